#include "tests/support/test_users.h"

#include <catch2/catch.hpp>

#include "server/auth/user_directory.h"
#include "server/directory_store.h"
#include "server/storage/checkpoint_store.h"
#include "tests/support/server_harness.h"

namespace rta::testing {

std::map<std::string, std::string> MakeUsersWithTokens(
    const std::string& data_dir, const std::vector<std::pair<std::string, std::string>>& users) {
  std::string error;
  auto store = storage::CheckpointStore::Open(data_dir + "/store", &error);
  REQUIRE(store != nullptr);
  server::CheckpointDirectoryStore adapter(*store);
  auto directory = auth::UserDirectory::Load(&adapter, &error);
  REQUIRE(directory != nullptr);
  std::map<std::string, std::string> tokens;
  for (const auto& [user_id, role_name] : users) {
    const auto role = auth::ParseRole(role_name);
    REQUIRE(role.has_value());
    REQUIRE(directory->PutUser({user_id, "", "", auth::RoleSet::Of({*role})}, &error));
    REQUIRE(directory->CreateToken(user_id, "", NowMs(), 0, &tokens[user_id], nullptr, &error));
  }
  return tokens;
}

}  // namespace rta::testing
