#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/auth/user_directory.h"
#include "server/cluster/nats_session.h"

namespace rta::cluster {

// The users and API tokens (hashes only) of a cluster in a JetStream key-value bucket
// (`RTA_DIRECTORY`, replicated like the streams), so that one `--init` and one token serve every
// node, and a token created or revoked on one node holds on all of them (issue 16: auth across
// nodes; a single node keeps them in its RocksDB store, server/directory_store.h).
//
// Keys: `users.<hex of the user id>` (user ids may hold characters a key may not) and
// `tokens.<token id>`; values are UserDirectory's encodings, as in the single node's store.
// Scan reads the bucket's stream with direct gets up to its last sequence (nats_session.h says
// why gets); a replica behind its leader is asked again, so a scan never misses an entry that
// was stored before it began.
//
// DirectoryFollower (below) tells its owner when the bucket changed, on any node.
//
// Thread-safety: every method from any thread.
class KvDirectoryStore final : public auth::DirectoryStore {
 public:
  static constexpr char kBucket[] = "RTA_DIRECTORY";

  // Connects (a session of its own) and opens the bucket, creating it if missing. Null and
  // *error when the cluster does not answer within timeout_ms.
  static std::unique_ptr<KvDirectoryStore> Open(const std::vector<std::string>& servers,
                                                int replicas, int timeout_ms, std::string* error);
  ~KvDirectoryStore() override;

  bool Put(Table table, std::string_view key, std::string_view value, std::string* error) override;
  bool Delete(Table table, std::string_view key, std::string* error) override;
  bool Scan(Table table, const std::function<bool(std::string_view, std::string_view)>& fn,
            std::string* error) override;

  // The bucket's stream's last sequence (it moves with every Put and Delete, on any node); false
  // and *error when it does not answer.
  bool LastSequence(uint64_t* last, std::string* error);

 private:
  KvDirectoryStore(std::unique_ptr<NatsSession> session, kvStore* kv)
      : session_(std::move(session)), kv_(kv) {}

  const std::unique_ptr<NatsSession> session_;
  kvStore* const kv_;
};

// A thread that asks a KvDirectoryStore every `poll_ms` for the bucket's last sequence and calls
// changed() (on that thread) when it moved since the last time: a user or token stored or
// deleted by any node, this one included. Its owner reloads its directory then
// (UserDirectory::Reload), so a token revoked on one node is refused by every node within about
// poll_ms. Declared after the directory it reloads: the destructor stops the thread first.
class DirectoryFollower {
 public:
  DirectoryFollower(KvDirectoryStore& store, int poll_ms, std::function<void()> changed);
  ~DirectoryFollower();
  DirectoryFollower(const DirectoryFollower&) = delete;
  DirectoryFollower& operator=(const DirectoryFollower&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace rta::cluster
