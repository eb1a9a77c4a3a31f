#include "server/auth/user_directory.h"

#include <catch2/catch.hpp>

#include "server/directory_store.h"
#include "server/storage/checkpoint_store.h"
#include "tests/support/temp_dir.h"

namespace rta::auth {
namespace {

using rta::testing::TempDir;

// The directory over the server's real RocksDB store in `dir`, opened afresh (a restart).
struct OpenDirectory {
  explicit OpenDirectory(const std::string& dir) {
    std::string error;
    store = storage::CheckpointStore::Open(dir, &error);
    REQUIRE(store != nullptr);
    adapter = std::make_unique<server::CheckpointDirectoryStore>(*store);
    users = UserDirectory::Load(adapter.get(), &error);
    INFO(error);
    REQUIRE(users != nullptr);
  }
  std::unique_ptr<storage::CheckpointStore> store;
  std::unique_ptr<server::CheckpointDirectoryStore> adapter;
  std::unique_ptr<UserDirectory> users;
};

TEST_CASE("users and token hashes survive a reopen of the store, tokens never stored as text",
          "[auth]") {
  TempDir dir;
  std::string token, error;
  TokenRecord record;
  {
    OpenDirectory open(dir.path());
    CHECK(open.users->empty());
    REQUIRE(open.users->PutUser({"ana", "Ana", "ana@example.com", RoleSet::Of({Role::kAnalyst})},
                                &error));
    REQUIRE(open.users->PutUser({"rep", "", "", RoleSet::Of({Role::kReporter})}, &error));
    REQUIRE(open.users->CreateToken("ana", "laptop", 1000, 5000, &token, &record, &error));
    std::string second;
    REQUIRE(open.users->CreateToken("rep", "", 1000, 0, &second, nullptr, &error));
    REQUIRE(open.users->RevokeToken(TokenIdOf(HashToken(second)), 2000, &error));
    // Nothing in the store holds the token's text.
    bool leaked = false;
    open.store->ScanRecords(
        "tokens",
        [&](std::string_view, std::string_view value) {
          leaked |= value.find(token) != std::string_view::npos ||
                    value.find(second) != std::string_view::npos;
          return true;
        },
        &error);
    CHECK_FALSE(leaked);
  }
  OpenDirectory reopened(dir.path());
  const auto view = reopened.users->view();
  REQUIRE(view->users.size() == 2);
  CHECK(view->users.at("ana").email == "ana@example.com");
  CHECK(view->users.at("ana").roles == RoleSet::Of({Role::kAnalyst}));
  REQUIRE(view->tokens.size() == 2);
  const TokenRecord& kept = view->tokens.at(HashToken(token));
  CHECK(kept.token_id == record.token_id);
  CHECK(kept.user_id == "ana");
  CHECK(kept.description == "laptop");
  CHECK(kept.expires_ms == 5000);
  CHECK(kept.revoked_ms == 0);
  size_t revoked = 0;
  for (const auto& [hash, entry] : view->tokens) revoked += entry.revoked_ms == 2000;
  CHECK(revoked == 1);
}

TEST_CASE("deleting a user revokes its tokens, and bad input names its field", "[auth]") {
  TempDir dir;
  OpenDirectory open(dir.path());
  std::string token, error;
  REQUIRE(open.users->PutUser({"ana", "", "", RoleSet::Of({Role::kViewer})}, &error));
  REQUIRE(open.users->CreateToken("ana", "", 1, 0, &token, nullptr, &error));
  REQUIRE(open.users->DeleteUser("ana", 7, &error));
  CHECK(open.users->view()->tokens.at(HashToken(token)).revoked_ms == 7);
  CHECK_FALSE(open.users->DeleteUser("ana", 8, &error));
  CHECK(error.find("user_id") != std::string::npos);
  CHECK_FALSE(open.users->CreateToken("nobody", "", 1, 0, &token, nullptr, &error));
  CHECK(error.find("user_id") != std::string::npos);
  CHECK_FALSE(open.users->PutUser({"", "", "", RoleSet()}, &error));
  CHECK(error.find("user_id") != std::string::npos);
  CHECK_FALSE(open.users->PutUser({"a b", "", "", RoleSet()}, &error));
  CHECK(error.find("user_id") != std::string::npos);
  CHECK_FALSE(open.users->PutUser({"bob", "", "bob.example.com", RoleSet()}, &error));
  CHECK(error.find("email") != std::string::npos);
  CHECK_FALSE(open.users->PutUser({"bob", std::string(300, 'x'), "", RoleSet()}, &error));
  CHECK(error.find("name") != std::string::npos);
  CHECK_FALSE(open.users->RevokeToken("000000000000", 9, &error));
  CHECK(error.find("token_id") != std::string::npos);
}

TEST_CASE("a directory without a store keeps users in memory", "[auth]") {
  std::string error, token;
  std::unique_ptr<UserDirectory> users = UserDirectory::Load(nullptr, &error);
  REQUIRE(users != nullptr);
  REQUIRE(users->PutUser({"ana", "", "", RoleSet::Of({Role::kViewer})}, &error));
  REQUIRE(users->CreateToken("ana", "", 1, 0, &token, nullptr, &error));
  CHECK(users->view()->tokens.size() == 1);
}

}  // namespace
}  // namespace rta::auth
