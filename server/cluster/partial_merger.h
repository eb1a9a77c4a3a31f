#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/cluster/nats_session.h"
#include "server/cluster/partial_record.h"
#include "server/cluster/partial_tap.h"

namespace rta::cluster {

// Every node's reader of every partition's partial records (rta.partial.>, the chains that the
// owners append, partition_owner.h): the whole partial stream in order, from its first record, so a
// node that starts (or restarts, or starts on a new machine) rebuilds the global view from what
// every owner published, and then follows it.
//
// The records wait in a bounded queue until the tick thread drains them into the view's
// aggregator (Aggregator::MergePartial): merging happens where the windows live, never
// concurrently with a tick. Every record is merged once: each partition's subject is one chain
// (each record appended with the sequence of the one it continues, partition_owner.h), so the
// stream holds no record twice and none that overlaps another. A record from an older lease
// revision after a newer one is merged too (a former owner that had not yet noticed its lease
// was gone re-read the chain's end and continued it correctly) but counted (stale()): two nodes
// were briefly working on one partition.
//
// Threading: one consumer thread of its own; Drain() from one thread at a time (the tick
// thread); the counters from any thread.
struct PartialMergerOptions {
  std::vector<std::string> servers;
  std::string stream = "RTA_PARTIALS";
  std::string prefix = "rta.partial";
  int replicas = 3;                         // when the stream is created
  uint64_t max_queued_bytes = 64ull << 20;  // the consumer waits beyond this (a slow tick)
  int connect_timeout_ms = 10'000;
  // Why the consumer was replaced (consumer thread).
  std::function<void(const std::string& why)> on_restart;
  // Where every message read goes next (the node's history reads from it instead of the
  // stream); must outlive the merger. Null: nowhere.
  PartialTap* tap = nullptr;
};

struct MergedPartial {
  uint32_t partition = 0;
  PartialRecord record;  // its delta points into the queue's copy, valid during the call
};

class PartialMerger {
 public:
  // Creates the partial stream if missing and starts following it. Null and *error when the
  // stream is not available within connect_timeout_ms.
  static std::unique_ptr<PartialMerger> Start(NatsSession* session, PartialMergerOptions options,
                                              std::string* error);
  ~PartialMerger();
  PartialMerger(const PartialMerger&) = delete;
  PartialMerger& operator=(const PartialMerger&) = delete;

  // Tick thread: calls merge() for every record received since the last call, in stream order;
  // returns how many.
  size_t Drain(const std::function<void(const MergedPartial&)>& merge);

  uint64_t received() const { return received_.load(std::memory_order_relaxed); }
  uint64_t stale() const { return stale_.load(std::memory_order_relaxed); }
  uint64_t malformed() const { return malformed_.load(std::memory_order_relaxed); }
  uint64_t restarts() const { return restarts_.load(std::memory_order_relaxed); }
  // The stream sequence of the last message read, and the stream's last when the merger started:
  // the view holds everything published before the start once the first reaches the second.
  uint64_t sequence() const { return sequence_.load(std::memory_order_acquire); }
  uint64_t start_sequence() const { return start_sequence_; }
  bool caught_up() const { return sequence() >= start_sequence_; }

 private:
  PartialMerger(NatsSession* session, PartialMergerOptions options, uint64_t start_sequence);
  void Loop();
  bool Follow(std::string* why);
  bool Receive(natsMsg* msg, uint64_t sequence);
  // The stream's last sequence; false and *why when the stream does not answer.
  static bool StreamLastSequence(NatsSession* session, const std::string& stream, uint64_t* last,
                                 std::string* why);

  struct Queued {
    uint32_t partition;
    std::string bytes;
  };

  NatsSession* const session_;
  const PartialMergerOptions options_;
  const uint64_t start_sequence_;
  std::vector<uint64_t> revisions_;  // consumer thread: the highest revision per partition seen

  std::mutex mu_;
  std::condition_variable drained_;
  std::deque<Queued> queue_;   // guarded by mu_
  uint64_t queued_bytes_ = 0;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_

  std::atomic<uint64_t> received_{0}, stale_{0}, malformed_{0}, restarts_{0}, sequence_{0};
  std::thread thread_;
};

}  // namespace rta::cluster
