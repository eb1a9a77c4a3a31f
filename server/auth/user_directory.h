#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "server/auth/roles.h"
#include "server/auth/token.h"

namespace rta::auth {

struct UserRecord {
  std::string user_id;
  std::string name;
  std::string email;
  RoleSet roles;
};

struct TokenRecord {
  std::string token_id;  // TokenIdOf(hash): public, names the token in lists and revocations
  std::string user_id;
  std::string description;
  TokenHash hash{};
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // 0: never
  int64_t revoked_ms = 0;  // 0: live
};

// Where the directory persists (the server's RocksDB store: storage::CheckpointStore, column
// families "users" and "tokens"). Each call is one synced write.
class DirectoryStore {
 public:
  enum class Table { kUsers, kTokens };
  virtual ~DirectoryStore() = default;
  virtual bool Put(Table table, std::string_view key, std::string_view value,
                   std::string* error) = 0;
  virtual bool Delete(Table table, std::string_view key, std::string* error) = 0;
  virtual bool Scan(Table table,
                    const std::function<bool(std::string_view key, std::string_view value)>& fn,
                    std::string* error) = 0;
};

// The server's users and their API tokens (hashes only).
//
// Thread-safety: view() from any thread, without a lock: it returns the current immutable
// View (an atomic shared_ptr), which every call's authentication reads. Changes are serialized
// by a mutex, written to the store first, then published as a new View: a change is visible
// only once it is durable, and a reader never sees half of one. Changes are rare (an admin's
// action); each copies the maps (thousands of users at most).
class UserDirectory {
 public:
  struct HashKey {
    size_t operator()(const TokenHash& hash) const {
      size_t value;
      static_assert(sizeof value <= sizeof(TokenHash));
      __builtin_memcpy(&value, hash.data(), sizeof value);  // already uniformly random
      return value;
    }
  };
  struct View {
    std::unordered_map<std::string, UserRecord> users;
    std::unordered_map<TokenHash, TokenRecord, HashKey> tokens;
  };

  // Loads what `store` holds; `store` may be null (memory only: lost at exit). The store must
  // outlive the directory.
  static std::unique_ptr<UserDirectory> Load(DirectoryStore* store, std::string* error);

  // Reads the store again and publishes what it holds as the view: for a store other processes
  // write too (a cluster's, server/cluster/kv_directory_store.h). Serialized with the changes
  // below. False and *error (the view unchanged) when the store cannot be read.
  bool Reload(std::string* error);

  std::shared_ptr<const View> view() const { return view_.load(std::memory_order_acquire); }
  bool empty() const { return view()->users.empty(); }

  // Creates or replaces a user (validated: see ValidateUser). Its tokens stay.
  bool PutUser(const UserRecord& user, std::string* error);
  // Deletes a user and revokes its tokens; false with *error when there is no such user.
  bool DeleteUser(std::string_view user_id, int64_t now_ms, std::string* error);
  // A new token for an existing user; *token is its text, returned only here.
  bool CreateToken(std::string_view user_id, std::string_view description, int64_t now_ms,
                   int64_t expires_ms, std::string* token, TokenRecord* record, std::string* error);
  // Revokes a token by its id; false with *error when unknown (revoking twice is fine).
  bool RevokeToken(std::string_view token_id, int64_t now_ms, std::string* error);

  // "" when valid, else what is wrong, naming the field.
  static std::string ValidateUser(const UserRecord& user);

 private:
  explicit UserDirectory(DirectoryStore* store) : store_(store) {}
  static bool ScanStore(DirectoryStore* store, View* view, std::string* error);
  bool StoreUser(const UserRecord& user, std::string* error);
  bool StoreToken(const TokenRecord& token, std::string* error);

  DirectoryStore* const store_;
  std::mutex write_mutex_;
  std::atomic<std::shared_ptr<const View>> view_;
};

}  // namespace rta::auth
