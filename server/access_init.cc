#include "server/access_init.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "server/auth/user_directory.h"
#include "server/directory_store.h"
#include "server/durability.h"
#include "server/server_metrics.h"

namespace rta::server {
namespace {

bool WriteSecretFile(const std::string& path, const std::string& text, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "cannot create " + path + ": " + std::strerror(errno);
    return false;
  }
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "cannot write " + path + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(path.c_str());
      return false;
    }
    written += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) {
    *error = "cannot sync " + path + ": " + std::strerror(errno);
    ::unlink(path.c_str());
  }
  return synced;
}

}  // namespace

bool InitAccess(const ServerConfig& config, std::string* report, std::string* error) {
  if (config.data_dir.empty()) {
    *error = "--init needs a data directory (--data-dir): users and tokens are kept there";
    return false;
  }
  const std::string token_path = config.data_dir + "/admin.token";
  std::error_code ignored;
  if (std::filesystem::exists(token_path, ignored)) {
    *error = token_path + " already exists: --init was run on this data directory";
    return false;
  }
  ServerMetrics metrics;
  std::unique_ptr<Durability> durability = Durability::Open(config, metrics, nullptr, error);
  if (durability == nullptr) return false;
  CheckpointDirectoryStore store(durability->store());
  std::unique_ptr<auth::UserDirectory> users = auth::UserDirectory::Load(&store, error);
  if (users == nullptr) return false;
  if (!users->empty()) {
    *error = config.data_dir + " already has " + std::to_string(users->view()->users.size()) +
             " user(s): --init creates only the first admin";
    return false;
  }
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::string token;
  auth::TokenRecord record;
  // The file first: a token that exists must be one somebody can read.
  if (!users->PutUser({"admin", "Administrator", "", auth::RoleSet::Of({auth::Role::kAdmin})},
                      error) ||
      !users->CreateToken("admin", "created by analytics_server --init", now_ms, 0, &token, &record,
                          error)) {
    return false;
  }
  if (!WriteSecretFile(token_path, token + "\n", error)) {
    std::string revoke_error;
    users->RevokeToken(record.token_id, now_ms, &revoke_error);
    return false;
  }
  *report = "created user 'admin' (role admin) and its API token " + record.token_id +
            ", written to " + token_path +
            " (mode 0600; not shown anywhere else).\n"
            "From now on every call to this server needs a token (--auth auto). Clients:\n"
            "  dashboard_client --token-file " +
            token_path + "\n";
  return true;
}

}  // namespace rta::server
