#include "server/auth/user_directory.h"

#include <nlohmann/json.hpp>

namespace rta::auth {
namespace {

using Json = nlohmann::json;
constexpr size_t kMaxIdChars = 128;
constexpr size_t kMaxTextChars = 256;

std::string Hex(const TokenHash& hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (uint8_t byte : hash) {
    text += kHex[byte >> 4];
    text += kHex[byte & 15];
  }
  return text;
}

bool FromHex(std::string_view text, TokenHash* hash) {
  if (text.size() != hash->size() * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < hash->size(); ++i) {
    const int high = nibble(text[2 * i]), low = nibble(text[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    (*hash)[i] = static_cast<uint8_t>(high << 4 | low);
  }
  return true;
}

std::string EncodeUser(const UserRecord& user) {
  return Json{{"user_id", user.user_id},
              {"name", user.name},
              {"email", user.email},
              {"roles", user.roles.Names()}}
      .dump();
}

bool DecodeUser(std::string_view bytes, UserRecord* user) {
  const Json json = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return false;
  try {
    user->user_id = json.at("user_id").get<std::string>();
    user->name = json.value("name", "");
    user->email = json.value("email", "");
    user->roles = RoleSet();
    for (const Json& role : json.at("roles")) {
      const std::optional<Role> parsed = ParseRole(role.get<std::string>());
      if (parsed) user->roles.Add(*parsed);
    }
  } catch (const Json::exception&) {
    return false;
  }
  return true;
}

std::string EncodeToken(const TokenRecord& token) {
  return Json{{"token_id", token.token_id},       {"user_id", token.user_id},
              {"description", token.description}, {"sha256", Hex(token.hash)},
              {"created_ms", token.created_ms},   {"expires_ms", token.expires_ms},
              {"revoked_ms", token.revoked_ms}}
      .dump();
}

bool DecodeToken(std::string_view bytes, TokenRecord* token) {
  const Json json = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return false;
  try {
    token->token_id = json.at("token_id").get<std::string>();
    token->user_id = json.at("user_id").get<std::string>();
    token->description = json.value("description", "");
    token->created_ms = json.value("created_ms", int64_t{0});
    token->expires_ms = json.value("expires_ms", int64_t{0});
    token->revoked_ms = json.value("revoked_ms", int64_t{0});
    if (!FromHex(json.at("sha256").get<std::string>(), &token->hash)) return false;
  } catch (const Json::exception&) {
    return false;
  }
  return token->token_id == TokenIdOf(token->hash);
}

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdChars) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '@';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string UserDirectory::ValidateUser(const UserRecord& user) {
  if (!ValidId(user.user_id)) {
    return "user_id: 1-128 characters of A-Z a-z 0-9 . _ - @, got '" +
           user.user_id.substr(0, kMaxIdChars) + "'";
  }
  if (user.name.size() > kMaxTextChars) return "name: longer than 256 bytes";
  if (user.email.size() > kMaxTextChars) return "email: longer than 256 bytes";
  if (!user.email.empty() && user.email.find('@') == std::string::npos) {
    return "email: '" + user.email + "' has no '@'";
  }
  return "";
}

bool UserDirectory::ScanStore(DirectoryStore* store, View* view, std::string* error) {
  std::string bad;
  const bool scanned = store->Scan(
                           DirectoryStore::Table::kUsers,
                           [&](std::string_view key, std::string_view value) {
                             UserRecord user;
                             if (!DecodeUser(value, &user) || user.user_id != key) {
                               bad = "user record '" + std::string(key) + "' does not parse";
                               return false;
                             }
                             view->users.emplace(user.user_id, std::move(user));
                             return true;
                           },
                           error) &&
                       bad.empty() &&
                       store->Scan(
                           DirectoryStore::Table::kTokens,
                           [&](std::string_view key, std::string_view value) {
                             TokenRecord token;
                             if (!DecodeToken(value, &token) || token.token_id != key) {
                               bad = "token record '" + std::string(key) + "' does not parse";
                               return false;
                             }
                             view->tokens.emplace(token.hash, std::move(token));
                             return true;
                           },
                           error);
  if (!bad.empty()) *error = bad;
  return scanned && bad.empty();
}

std::unique_ptr<UserDirectory> UserDirectory::Load(DirectoryStore* store, std::string* error) {
  std::unique_ptr<UserDirectory> directory(new UserDirectory(store));
  auto view = std::make_shared<View>();
  if (store != nullptr && !ScanStore(store, view.get(), error)) return nullptr;
  directory->view_.store(std::move(view), std::memory_order_release);
  return directory;
}

bool UserDirectory::Reload(std::string* error) {
  if (store_ == nullptr) return true;
  std::lock_guard lock(write_mutex_);
  auto view = std::make_shared<View>();
  if (!ScanStore(store_, view.get(), error)) return false;
  view_.store(std::move(view), std::memory_order_release);
  return true;
}

bool UserDirectory::StoreUser(const UserRecord& user, std::string* error) {
  return store_ == nullptr ||
         store_->Put(DirectoryStore::Table::kUsers, user.user_id, EncodeUser(user), error);
}

bool UserDirectory::StoreToken(const TokenRecord& token, std::string* error) {
  return store_ == nullptr ||
         store_->Put(DirectoryStore::Table::kTokens, token.token_id, EncodeToken(token), error);
}

bool UserDirectory::PutUser(const UserRecord& user, std::string* error) {
  if (std::string why = ValidateUser(user); !why.empty()) {
    *error = why;
    return false;
  }
  std::lock_guard lock(write_mutex_);
  if (!StoreUser(user, error)) return false;
  auto next = std::make_shared<View>(*view());
  next->users[user.user_id] = user;
  view_.store(std::move(next), std::memory_order_release);
  return true;
}

bool UserDirectory::DeleteUser(std::string_view user_id, int64_t now_ms, std::string* error) {
  std::lock_guard lock(write_mutex_);
  auto next = std::make_shared<View>(*view());
  const auto found = next->users.find(std::string(user_id));
  if (found == next->users.end()) {
    *error = "user_id: no user '" + std::string(user_id) + "'";
    return false;
  }
  // Tokens first: a crash in between leaves a user without live tokens, never live tokens of
  // a deleted user.
  for (auto& [hash, token] : next->tokens) {
    if (token.user_id != user_id || token.revoked_ms != 0) continue;
    token.revoked_ms = now_ms;
    if (!StoreToken(token, error)) return false;
  }
  if (store_ != nullptr && !store_->Delete(DirectoryStore::Table::kUsers, user_id, error)) {
    return false;
  }
  next->users.erase(found);
  view_.store(std::move(next), std::memory_order_release);
  return true;
}

bool UserDirectory::CreateToken(std::string_view user_id, std::string_view description,
                                int64_t now_ms, int64_t expires_ms, std::string* token,
                                TokenRecord* record, std::string* error) {
  if (description.size() > kMaxTextChars) {
    *error = "description: longer than 256 bytes";
    return false;
  }
  std::lock_guard lock(write_mutex_);
  auto next = std::make_shared<View>(*view());
  if (!next->users.contains(std::string(user_id))) {
    *error = "user_id: no user '" + std::string(user_id) + "'";
    return false;
  }
  TokenRecord created;
  std::string text = NewToken();
  created.hash = HashToken(text);
  created.token_id = TokenIdOf(created.hash);
  created.user_id = user_id;
  created.description = description;
  created.created_ms = now_ms;
  created.expires_ms = expires_ms;
  if (!StoreToken(created, error)) return false;
  next->tokens[created.hash] = created;
  view_.store(std::move(next), std::memory_order_release);
  *token = std::move(text);
  if (record != nullptr) *record = std::move(created);
  return true;
}

bool UserDirectory::RevokeToken(std::string_view token_id, int64_t now_ms, std::string* error) {
  std::lock_guard lock(write_mutex_);
  auto next = std::make_shared<View>(*view());
  for (auto& [hash, token] : next->tokens) {
    if (token.token_id != token_id) continue;
    if (token.revoked_ms != 0) return true;
    token.revoked_ms = now_ms;
    if (!StoreToken(token, error)) return false;
    view_.store(std::move(next), std::memory_order_release);
    return true;
  }
  *error = "token_id: no token '" + std::string(token_id) + "'";
  return false;
}

}  // namespace rta::auth
