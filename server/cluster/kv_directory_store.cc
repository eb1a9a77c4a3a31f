#include "server/cluster/kv_directory_store.h"

#include <chrono>
#include <cstring>

namespace rta::cluster {
namespace {

constexpr char kStream[] = "KV_RTA_DIRECTORY";
constexpr char kSubjectPrefix[] = "$KV.RTA_DIRECTORY.";
// A replica that answers "none" before the bucket's last sequence is behind its leader: asked
// again for up to this long before the scan fails.
constexpr auto kScanLagLimit = std::chrono::seconds(5);

std::string TablePrefix(auth::DirectoryStore::Table table) {
  return table == auth::DirectoryStore::Table::kUsers ? "users." : "tokens.";
}

std::string KeyOf(auth::DirectoryStore::Table table, std::string_view key) {
  return TablePrefix(table) +
         (table == auth::DirectoryStore::Table::kUsers ? HexKey(key) : std::string(key));
}

}  // namespace

std::unique_ptr<KvDirectoryStore> KvDirectoryStore::Open(const std::vector<std::string>& servers,
                                                         int replicas, int timeout_ms,
                                                         std::string* error) {
  std::unique_ptr<NatsSession> session = NatsSession::Connect(servers, 5000, error);
  if (session == nullptr) return nullptr;
  kvStore* kv =
      OpenBucket(session->js(), kBucket, /*ttl_ms=*/0, replicas,
                 std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms), error);
  if (kv == nullptr) return nullptr;
  return std::unique_ptr<KvDirectoryStore>(new KvDirectoryStore(std::move(session), kv));
}

KvDirectoryStore::~KvDirectoryStore() { kvStore_Destroy(kv_); }

bool KvDirectoryStore::Put(Table table, std::string_view key, std::string_view value,
                           std::string* error) {
  const std::string name = KeyOf(table, key);
  uint64_t revision = 0;
  const natsStatus status =
      kvStore_Put(&revision, kv_, name.c_str(), value.data(), static_cast<int>(value.size()));
  if (status == NATS_OK) return true;
  *error = "storing " + name + " in the key-value bucket " + kBucket + ": " + DescribeNats(status);
  return false;
}

bool KvDirectoryStore::Delete(Table table, std::string_view key, std::string* error) {
  const std::string name = KeyOf(table, key);
  const natsStatus status = kvStore_Delete(kv_, name.c_str());
  if (status == NATS_OK) return true;
  *error =
      "deleting " + name + " from the key-value bucket " + kBucket + ": " + DescribeNats(status);
  return false;
}

bool KvDirectoryStore::Scan(Table table,
                            const std::function<bool(std::string_view, std::string_view)>& fn,
                            std::string* error) {
  uint64_t last = 0;
  if (!LastSequence(&last, error)) return false;
  const std::string all = std::string(kSubjectPrefix) + ">";
  const std::string wanted = kSubjectPrefix + TablePrefix(table);
  uint64_t next = 1;
  auto lag_deadline = std::chrono::steady_clock::now() + kScanLagLimit;
  while (next <= last) {
    NatsMsgPtr msg;
    const natsStatus status = DirectGetNext(session_->js(), kStream, all, next, &msg);
    if (status != NATS_OK) {
      // The message at `last` exists (a bucket keeps each key's newest): "none" or a failure
      // before it is a replica behind, a server gone, an election.
      if (std::chrono::steady_clock::now() >= lag_deadline) {
        *error = "reading the key-value bucket " + std::string(kBucket) + " at sequence " +
                 std::to_string(next) + " of " + std::to_string(last) + ": " +
                 DescribeNats(status);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    lag_deadline = std::chrono::steady_clock::now() + kScanLagLimit;
    next = natsMsg_GetSequence(msg.get()) + 1;
    const std::string subject = natsMsg_GetSubject(msg.get());
    if (subject.compare(0, wanted.size(), wanted) != 0) continue;  // the other table
    const char* operation = nullptr;
    if (natsMsgHeader_Get(msg.get(), "KV-Operation", &operation) == NATS_OK) {
      continue;  // DEL or PURGE: a deleted key
    }
    std::string key = subject.substr(wanted.size());
    if (table == Table::kUsers) {
      std::string id;
      if (!UnhexKey(key, &id)) {
        *error = "key " + subject + " in " + kBucket + " is not a hex user id";
        return false;
      }
      key = std::move(id);
    }
    if (!fn(key, std::string_view(natsMsg_GetData(msg.get()),
                                  static_cast<size_t>(natsMsg_GetDataLength(msg.get()))))) {
      return true;
    }
  }
  return true;
}

bool KvDirectoryStore::LastSequence(uint64_t* last, std::string* error) {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(&info, session_->js(), kStream, nullptr, &code);
  if (status != NATS_OK) {
    *error = "asking where the key-value bucket " + std::string(kBucket) +
             " ends: " + DescribeNats(status, code);
    return false;
  }
  *last = info->State.LastSeq;
  jsStreamInfo_Destroy(info);
  return true;
}

DirectoryFollower::DirectoryFollower(KvDirectoryStore& store, int poll_ms,
                                     std::function<void()> changed) {
  uint64_t seen = 0;
  std::string ignored;
  store.LastSequence(&seen, &ignored);  // what the owner just loaded (or older: one reload more)
  thread_ = std::thread([this, &store, poll_ms, changed = std::move(changed), seen]() mutable {
    std::unique_lock lock(mu_);
    while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(poll_ms), [&] { return stopping_; })) {
      lock.unlock();
      uint64_t last = 0;
      std::string error;
      if (store.LastSequence(&last, &error) && last != seen) {
        seen = last;
        changed();
      }
      lock.lock();
    }
  });
}

DirectoryFollower::~DirectoryFollower() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

}  // namespace rta::cluster
