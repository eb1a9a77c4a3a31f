#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "server/aggregator/clock.h"
#include "server/cluster/cluster_history.h"
#include "server/cluster/nats_session.h"
#include "server/cluster/segment_registry.h"
#include "server/storage/rollup_accumulator.h"

namespace rta::cluster {

// Counts one owned partition: reads its events from the event stream (rta.ev.<p>, written by
// every node's ingest log), de-duplicates and counts them in an aggregator of its own in
// export mode, and every exchange interval appends what changed as one partial record
// (partial_record.h) to the partition's partial subject (rta.partial.<p>), through a JetStream
// log whose expected-last-sequence fencing makes the subject one chain: each record covers the
// events after the one before it, and a publisher that has not seen the chain's last record (a
// paused former owner, or this one after such a record landed) is refused instead of counting
// events twice.
//
// At start (and after any failure): the partial subject's last record says up to which event
// sequence the partition is counted; the owner warms its de-dup table with the events of the
// dedupe horizon before that (remembered, not counted), then counts from the next one. So a
// takeover counts every acknowledged event once: those after the last record by the new owner,
// those before it already merged everywhere.
//
// History: the owner also folds each counted event into rollup cells and ships them in the
// records less often than the live deltas (PartitionOwnerOptions::history_flush_ms), so a
// record also says up to which event the rollups went out (partial_record.h). A new owner
// folds the events between that and the chain's end into rollups again while it warms its
// de-dup table, deciding duplicates as the former owner did (same ids, same order), and the
// event subject keeps those events until a stored record covers their rollups too. The records
// also carry the owner's session changes and admitted values; a new owner restores both from its
// node's history store as of the chain's rollup_covered (ClusterHistory::RestorePartition)
// before it folds, so a session that spans a takeover counts once, keeps its acquisition and
// takes back its bounce. If the store does not reach that point within a few seconds (it is
// behind, or missed records), the owner starts both empty: told (on_history_unrestored) and
// counted.
//
// Trimming (every 10 exchanges; docs/design/cluster.md "Trimming"): the owner deletes from its
// partition's event subject what a stored record of its chain covers, except the events of the
// dedupe horizon (a next owner re-reads those ids), and from its chain the records published
// more than 2 hours ago except the last (a node rebuilding its 1-hour view needs none of them).
// So the streams hold about a dedupe horizon of events and two hours of partials, not
// everything ever ingested.
//
// Threading: one thread of its own does everything (its aggregator is used by it alone). The
// destructor stops it within ~100 ms; what was counted since the last record is dropped (the
// next owner counts it again from the stream). Counters are readable from any thread.
struct PartitionOwnerOptions {
  std::vector<std::string> servers;  // for the partial log's own connection
  std::string node;
  uint32_t partition = 0;
  uint64_t revision = 0;  // the lease's: carried in every record
  std::string event_stream = "RTA_EVENTS";
  std::string event_prefix = "rta.ev";
  std::string partial_stream = "RTA_PARTIALS";
  std::string partial_prefix = "rta.partial";
  int replicas = 3;
  int exchange_ms = 1000;
  agg::AggregatorConfig aggregator;  // export_partials and the cluster's hash seeds set
  // The history (docs/design/cluster.md "History"): every counted event is also folded into
  // rollup cells (hashed with the cluster's seeds), shipped in the partial records every
  // history_flush_ms, or sooner when this many cells or pairs are pending (which bounds the
  // owner's memory). Off: the records carry no rollups.
  bool history = false;
  storage::RollupAccumulator::Limits history_limits;
  int history_flush_ms = 2000;
  size_t history_max_pending_cells = 4096;
  size_t history_max_pending_pairs = 65'536;
  // The node's history store, which the owner restores its session table and admitted values
  // from (null: it starts them empty). Must outlive the owner.
  ClusterHistory* history_store = nullptr;
  // Why the owner could not restore them (its thread).
  std::function<void(uint32_t partition, const std::string& why)> on_history_unrestored;
  // The cluster's live segments (null: none): counted here as well and shipped in the records
  // (checked at every exchange; a segment counts from the exchange after it appeared).
  std::function<std::shared_ptr<const SegmentRegistry::Segments>()> segments;
  // Why a setup ended early and the owner starts over (its thread).
  std::function<void(uint32_t partition, const std::string& why)> on_restart;
  // Why a trim of the partition's subjects failed (its thread; the next trim tries again).
  std::function<void(uint32_t partition, const std::string& why)> on_trim_failed;
};

class PartitionOwner {
 public:
  PartitionOwner(NatsSession* session, PartitionOwnerOptions options, const agg::Clock& clock);
  ~PartitionOwner();
  PartitionOwner(const PartitionOwner&) = delete;
  PartitionOwner& operator=(const PartitionOwner&) = delete;

  uint32_t partition() const { return options_.partition; }
  // The last event-stream sequence counted, and how far behind the stream the owner reads: the
  // age in ms of the message it applied last (0 when it has read everything).
  uint64_t applied_sequence() const { return applied_.load(std::memory_order_relaxed); }
  uint64_t lag_ms() const { return lag_.load(std::memory_order_relaxed); }
  // Reads of the stream that failed (retried).
  uint64_t read_errors() const { return read_errors_.load(std::memory_order_relaxed); }
  uint64_t events() const { return events_.load(std::memory_order_relaxed); }
  uint64_t duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
  uint64_t partials() const { return partials_.load(std::memory_order_relaxed); }
  // Events folded into rollup cells, and rollup bytes shipped in records.
  uint64_t history_events() const { return history_events_.load(std::memory_order_relaxed); }
  uint64_t history_bytes() const { return history_bytes_.load(std::memory_order_relaxed); }
  // Setups that restored the former owner's history state, and those that could not (started
  // with empty session table and values); sessions restored.
  uint64_t history_restored() const { return history_restored_.load(std::memory_order_relaxed); }
  uint64_t history_unrestored() const {
    return history_unrestored_.load(std::memory_order_relaxed);
  }
  uint64_t sessions_restored() const { return sessions_restored_.load(std::memory_order_relaxed); }
  // Live segments this owner counts, and cluster segments it could not (over its limit).
  uint64_t segments_counted() const { return segments_counted_.load(std::memory_order_relaxed); }
  uint64_t segments_skipped() const { return segments_skipped_.load(std::memory_order_relaxed); }
  uint64_t restarts() const { return restarts_.load(std::memory_order_relaxed); }
  uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }
  uint64_t trim_failures() const { return trim_failures_.load(std::memory_order_relaxed); }
  // Why the last setup ended early (empty if none did).
  std::string last_problem() const;
  // True once the owner counts (set up and past the de-dup warm-up).
  bool counting() const { return counting_.load(std::memory_order_acquire); }

 private:
  class Run;
  void Loop();

  NatsSession* const session_;
  const PartitionOwnerOptions options_;
  const agg::Clock& clock_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> counting_{false};
  std::atomic<uint64_t> applied_{0}, lag_{0}, events_{0}, duplicates_{0}, partials_{0},
      restarts_{0}, skipped_{0}, read_errors_{0}, trim_failures_{0}, history_events_{0},
      history_bytes_{0}, segments_counted_{0}, segments_skipped_{0}, history_restored_{0},
      history_unrestored_{0}, sessions_restored_{0};
  mutable std::mutex problem_mu_;
  std::string last_problem_;  // guarded by problem_mu_
  std::thread thread_;
};

}  // namespace rta::cluster
