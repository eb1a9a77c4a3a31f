#include "server/access_init.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "server/auth/user_directory.h"
#include "server/cluster/kv_directory_store.h"
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

bool CreateFirstAdmin(auth::UserDirectory* users, const std::string& token_path,
                      std::string* token_id, std::string* error) {
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
  *token_id = record.token_id;
  return true;
}

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
  // A single node's users and tokens live in its data directory; a cluster's in its key-value
  // bucket, shared by every node: --init on any one node makes the admin of all of them.
  ServerMetrics metrics;
  std::unique_ptr<Durability> durability;
  std::unique_ptr<auth::DirectoryStore> store;
  std::string where = config.data_dir;
  if (!config.cluster.empty()) {
    // Only the token file goes to the data directory (Durability::Open makes it otherwise).
    std::error_code made;
    std::filesystem::create_directories(config.data_dir, made);
    if (made) {
      *error = "cannot create " + config.data_dir + ": " + made.message();
      return false;
    }
    store = cluster::KvDirectoryStore::Open(ClusterServers(config),
                                            static_cast<int>(config.cluster_replicas),
                                            /*timeout_ms=*/30'000, error);
    where =
        std::string("the cluster (key-value bucket ") + cluster::KvDirectoryStore::kBucket + ")";
  } else {
    durability = Durability::Open(config, metrics, nullptr, error);
    if (durability != nullptr)
      store = std::make_unique<CheckpointDirectoryStore>(durability->store());
  }
  if (store == nullptr) return false;
  std::unique_ptr<auth::UserDirectory> users = auth::UserDirectory::Load(store.get(), error);
  if (users == nullptr) return false;
  if (!users->empty()) {
    *error = where + " already has " + std::to_string(users->view()->users.size()) +
             " user(s): --init creates only the first admin";
    return false;
  }
  std::string token_id;
  if (!CreateFirstAdmin(users.get(), token_path, &token_id, error)) return false;
  *report = "created user 'admin' (role admin) and its API token " + token_id + ", written to " +
            token_path + " (mode 0600; not shown anywhere else).\n" +
            (config.cluster.empty()
                 ? std::string("From now on every call to this server needs a token (--auth auto).")
                 : std::string("From now on every call to every node of this cluster needs a "
                               "token (--auth auto); give this file to the others' clients too.")) +
            " Clients:\n"
            "  dashboard_client --token-file " +
            token_path + "\n";
  return true;
}

}  // namespace rta::server
