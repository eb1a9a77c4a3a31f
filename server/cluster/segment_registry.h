#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/cluster/nats_session.h"

namespace rta::cluster {

// The cluster's live segments (docs/design/cluster.md "Live segments"): the segments every node
// keeps for its filtered subscriptions, by canonical key (agg::SegmentKeyOf), in the JetStream
// key-value bucket RTA_SEGMENTS, so that every partition owner counts each of them for its
// partition and ships the segment's deltas beside its own (partial_record.h).
//
// A node puts each of its segments' keys (under a hash of the key, the key as the value) when
// it opens one and again every kRefreshMs; the
// bucket's max age (kTtlMs) drops a key no node has put lately, so a segment lives while some
// node keeps it and a crashed node's segments go without a delete (a node does not delete
// its keys: another node may keep the same segment). Every kPollMs the node reads the bucket's
// keys (direct gets over its stream, which holds one message per live key: no consumer, for
// the reasons of PartialMerger) and publishes the set with a version its owners compare.
//
// Threading: one thread of its own for the bucket; SetLocal() from one thread (the tick
// thread); Cluster() from any thread.
class SegmentRegistry {
 public:
  static constexpr int kTtlMs = 60'000;
  static constexpr int kRefreshMs = 15'000;
  static constexpr int kPollMs = 1000;
  static constexpr const char* kBucket = "RTA_SEGMENTS";

  // Creates the bucket if missing (`replicas`) within `timeout_ms`.
  static std::unique_ptr<SegmentRegistry> Open(
      NatsSession* session, int replicas, int timeout_ms,
      std::function<void(const std::string& event, const std::string& detail)> warn,
      std::string* error);
  ~SegmentRegistry();
  SegmentRegistry(const SegmentRegistry&) = delete;
  SegmentRegistry& operator=(const SegmentRegistry&) = delete;

  // The segments this node keeps now. Cheap when unchanged.
  void SetLocal(const std::vector<std::string>& keys);

  // The cluster's segments (sorted keys) as last read, and their version (0: not read yet).
  struct Segments {
    uint64_t version = 0;
    std::vector<std::string> keys;
  };
  std::shared_ptr<const Segments> Cluster() const;

 private:
  SegmentRegistry(NatsSession* session, kvStore* kv,
                  std::function<void(const std::string&, const std::string&)> warn)
      : session_(session), kv_(kv), warn_(std::move(warn)) {}
  void Loop();
  // Puts the local keys that are new or due for a refresh; false (and a warning) on a failure.
  void PutLocal();
  // Reads the bucket's keys; false when a read failed.
  bool ReadKeys(std::vector<std::string>* keys, std::string* why);

  NatsSession* const session_;
  kvStore* const kv_;
  const std::function<void(const std::string&, const std::string&)> warn_;

  mutable std::mutex mu_;
  std::vector<std::string> local_;  // guarded by mu_
  bool local_changed_ = false;      // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  std::condition_variable wake_;
  std::shared_ptr<const Segments> cluster_;  // guarded by mu_
  // The thread's: when each local key was last put.
  std::map<std::string, std::chrono::steady_clock::time_point> put_at_;
  std::thread thread_;
};

}  // namespace rta::cluster
