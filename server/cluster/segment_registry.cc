#include "server/cluster/segment_registry.h"

#include <algorithm>

namespace rta::cluster {
std::unique_ptr<SegmentRegistry> SegmentRegistry::Open(
    NatsSession* session, int replicas, int timeout_ms,
    std::function<void(const std::string& event, const std::string& detail)> warn,
    std::string* error) {
  kvStore* kv =
      OpenBucket(session->js(), kBucket, kTtlMs, replicas,
                 std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms), error);
  if (kv == nullptr) return nullptr;
  std::unique_ptr<SegmentRegistry> registry(new SegmentRegistry(session, kv, std::move(warn)));
  registry->cluster_ = std::make_shared<Segments>();
  registry->thread_ = std::thread([raw = registry.get()] { raw->Loop(); });
  return registry;
}

SegmentRegistry::~SegmentRegistry() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  kvStore_Destroy(kv_);
}

void SegmentRegistry::SetLocal(const std::vector<std::string>& keys) {
  {
    std::lock_guard lock(mu_);
    if (keys == local_) return;
    local_ = keys;
    local_changed_ = true;
  }
  wake_.notify_all();  // a new segment is put at once, not at the next poll
}

std::shared_ptr<const SegmentRegistry::Segments> SegmentRegistry::Cluster() const {
  std::lock_guard lock(mu_);
  return cluster_;
}

void SegmentRegistry::Loop() {
  uint64_t version = 0;
  auto next_read = std::chrono::steady_clock::now();
  for (;;) {
    PutLocal();
    if (std::chrono::steady_clock::now() >= next_read) {
      std::vector<std::string> keys;
      std::string why;
      if (ReadKeys(&keys, &why)) {
        std::sort(keys.begin(), keys.end());
        std::lock_guard lock(mu_);
        if (cluster_->version == 0 || keys != cluster_->keys) {
          auto segments = std::make_shared<Segments>();
          segments->version = ++version;
          segments->keys = std::move(keys);
          cluster_ = std::move(segments);
        }
      } else if (warn_) {
        warn_("cluster_segments_read_failed", why);
      }
      next_read = std::chrono::steady_clock::now() + std::chrono::milliseconds(kPollMs);
    }
    std::unique_lock lock(mu_);
    wake_.wait_until(lock, next_read, [&] { return stopping_ || local_changed_; });
    if (stopping_) return;
    // A new local segment: read the bucket right after putting it, so that this node's own
    // owners count it without waiting for the next poll.
    if (local_changed_) next_read = std::chrono::steady_clock::now();
  }
}

void SegmentRegistry::PutLocal() {
  std::vector<std::string> local;
  {
    std::lock_guard lock(mu_);
    local = local_;
    local_changed_ = false;
  }
  const auto now = std::chrono::steady_clock::now();
  for (auto it = put_at_.begin(); it != put_at_.end();) {
    it = std::find(local.begin(), local.end(), it->first) == local.end() ? put_at_.erase(it)
                                                                         : std::next(it);
  }
  for (const std::string& key : local) {
    auto found = put_at_.find(key);
    if (found != put_at_.end() && now - found->second < std::chrono::milliseconds(kRefreshMs)) {
      continue;
    }
    uint64_t revision = 0;
    // Named by a hash, the key in the value: a segment of long values would make a subject
    // longer than NATS takes.
    std::string name = std::to_string(StableHash(key, 0x5e6e));
    const natsStatus status =
        kvStore_Put(&revision, kv_, name.c_str(), key.data(), static_cast<int>(key.size()));
    if (status != NATS_OK) {
      if (warn_) warn_("cluster_segment_put_failed", DescribeNats(status));
      continue;  // tried again at the next pass
    }
    put_at_[key] = now;
  }
}

bool SegmentRegistry::ReadKeys(std::vector<std::string>* keys, std::string* why) {
  return ForEachBucketEntry(
      session_->js(), kBucket,
      [&](std::string_view, std::string_view value) {
        if (!value.empty()) keys->emplace_back(value);  // empty: not a segment, left alone
      },
      why);
}

}  // namespace rta::cluster
