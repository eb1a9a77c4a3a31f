#pragma once

#include <atomic>
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

// Which node owns which partition (issue 16, docs/design/cluster.md "Ownership"): leases the
// NATS cluster itself holds, in two JetStream key-value buckets replicated like the stream.
//
//   RTA_NODES   key = node name; every node puts its own every lease_ms / 3. The bucket's TTL
//               (lease_ms) drops a node that stopped: the keys present are the live members.
//   RTA_LEASES  key = "p<partition>", value = the owning node ("" = released). Taken with
//               create-if-absent (or compare-and-set from a released value), renewed every
//               lease_ms / 3 by compare-and-set on the revision this node last wrote, expired
//               by the bucket's TTL when the owner stops renewing (a crash, a partition from
//               NATS, a paused process).
//
// Who should own what: rendezvous hashing of (node, partition) over the live members, so every
// node computes the same answer from the same member list, a joining node takes about 1/N of
// the partitions and a leaving node's share spreads over the rest. A node takes only the
// partitions it is preferred for and hands over (lost, then released: free at once instead of
// after the TTL) those preferred for another live member.
//
// Why this fences: every renewal is a compare-and-set on the revision this node wrote, so a
// node whose lease expired (or was taken over) cannot renew it; it learns so on its next round
// and calls `lost`. Between the expiry and that round a paused former owner may still think it
// owns the partition: whatever it publishes then must be fenced by the data path too (the
// partials' expected-last-sequence, the revision given to `acquired`).
//
// Threading: one thread of its own runs the rounds and calls the callbacks (never two at once,
// never after the destructor returns). Owned() and Members() may be called from any thread.
struct PartitionLeaseOptions {
  std::string node;  // this node's name: unique in the cluster, no '.', '*', '>' or spaces
  uint32_t partitions = 16;
  int lease_ms = 6000;  // the buckets' TTL; rounds run every lease_ms / 3
  int replicas = 3;     // when the buckets are created
  std::string lease_bucket = "RTA_LEASES";
  std::string member_bucket = "RTA_NODES";
  int connect_timeout_ms = 10'000;  // Start: until both buckets answer
};

struct PartitionLeaseCallbacks {
  // This node now owns `partition`; `revision` is the lease's key-value revision at acquisition
  // (strictly higher than any earlier owner's).
  std::function<void(uint32_t partition, uint64_t revision)> acquired;
  // Stop working on `partition` now: it is being handed over, or a renewal failed (the lease
  // may already be someone else's). Called before the release, so the work stops first.
  std::function<void(uint32_t partition)> lost;
};

class PartitionLeases {
 public:
  // Opens (creates when missing) both buckets and starts the rounds; the first round runs at
  // once. Null and *error when the buckets do not answer within connect_timeout_ms. `session`
  // must outlive the returned object.
  static std::unique_ptr<PartitionLeases> Start(NatsSession* session, PartitionLeaseOptions options,
                                                PartitionLeaseCallbacks callbacks,
                                                std::string* error);
  // Stops the rounds, calls `lost` for every owned partition, releases them and removes this
  // node from the members, so that the others take over within one round instead of a TTL.
  ~PartitionLeases();
  PartitionLeases(const PartitionLeases&) = delete;
  PartitionLeases& operator=(const PartitionLeases&) = delete;

  std::vector<uint32_t> Owned() const;       // sorted
  std::vector<std::string> Members() const;  // as last listed, sorted
  uint64_t rounds() const { return rounds_.load(std::memory_order_acquire); }

 private:
  PartitionLeases(NatsSession* session, PartitionLeaseOptions options,
                  PartitionLeaseCallbacks callbacks, kvStore* leases, kvStore* members);
  void Loop();
  void Round();
  bool Stopping() const;
  bool TryAcquire(uint32_t partition, uint64_t* revision);
  void Release(uint32_t partition, uint64_t revision);
  std::string Key(uint32_t partition) const { return "p" + std::to_string(partition); }

  NatsSession* const session_;
  const PartitionLeaseOptions options_;
  const PartitionLeaseCallbacks callbacks_;
  kvStore* const leases_;
  kvStore* const members_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                 // guarded by mu_
  std::map<uint32_t, uint64_t> owned_;    // partition -> revision this node last wrote; mu_
  std::vector<std::string> member_list_;  // guarded by mu_
  std::atomic<uint64_t> rounds_{0};
  std::thread thread_;
};

// The live member that should own `partition`: the highest hash of (member, partition)
// (rendezvous hashing). Empty when `members` is. Pure: the same on every node.
std::string PreferredOwner(const std::vector<std::string>& members, uint32_t partition);

}  // namespace rta::cluster
