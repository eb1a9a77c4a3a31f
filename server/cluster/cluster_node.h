#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "server/aggregator/clock.h"
#include "server/cluster/cluster_history.h"
#include "server/cluster/nats_session.h"
#include "server/cluster/partial_merger.h"
#include "server/cluster/partition_leases.h"
#include "server/cluster/partition_owner.h"
#include "server/cluster/segment_registry.h"
#include "server/storage/event_log.h"

namespace rta::cluster {

// One analytics node of a cluster (issue 16, docs/design/cluster.md): what --cluster adds to
// the server, in one object.
//   ingest:  the node's EventLog publishes each accepted batch's events to their partitions'
//            subjects of the event stream (JetStreamLog in ingest mode); an acknowledgement
//            waits until every part is stored on a quorum.
//   owners:  the partitions this node holds a lease on (PartitionLeases) are counted here, one
//            PartitionOwner each, which publish partial records.
//   view:    every partition's partial records, merged into the node's own aggregator
//            (PartialMerger, drained by the tick thread): the numbers every node serves.
// The cluster's constants live in a key-value bucket (RTA_CLUSTER): the hash seeds every
// aggregator of every node uses (HLL registers, session and key hashes must agree to merge) and
// the partition count (a node started with another one refuses to start).
//
// Threading: Connect(), OpenIngestLog() and StartServing() at start; MergeInto() on the tick
// thread; Stats() anywhere; the destructor after ingest has stopped.
struct ClusterOptions {
  std::vector<std::string> servers;  // nats://host:port, any of the NATS cluster's
  std::string node;                  // unique in the cluster
  std::string event_stream = "RTA_EVENTS";
  int replicas = 3;
  uint32_t partitions = 16;
  int lease_ms = 6000;
  int exchange_ms = 1000;
  int connect_timeout_ms = 10'000;
  agg::AggregatorConfig aggregator;  // the node's; owners' are derived from it
  // The history (cluster_history.h): the node's store directory ("": no history; owners then
  // ship no rollups), its retention, and the owners' fold limits and flush interval.
  std::string history_dir;
  storage::RollupRetention history_retention;
  storage::RollupAccumulator::Limits history_limits;
  int history_flush_ms = 2000;
  // Told what went wrong and was recovered from (a partition owner or the merger starting over,
  // a partial that did not merge): event name and detail, for the server's log. Any thread.
  std::function<void(const std::string& event, const std::string& detail)> warn;
};

struct ClusterStats {
  uint32_t members = 0;
  std::vector<uint32_t> owned;
  std::map<uint32_t, uint64_t> lag_ms;  // owned partition -> age of its last message read
  uint64_t events_counted = 0;          // by this node's current owners
  uint64_t duplicates = 0;
  uint64_t partials_published = 0;
  uint64_t owner_restarts = 0;
  uint64_t trim_failures = 0;  // owners' trims of their subjects that failed (retried)
  uint64_t history_events = 0;  // folded into rollups by this node's owners
  uint64_t history_bytes = 0;   // rollup bytes they shipped in partial records
  // Owner setups that restored a former owner's history state, or could not; sessions restored.
  uint64_t history_restored = 0, history_unrestored = 0, sessions_restored = 0;
  ClusterHistoryStats history;  // this node's store (zero without one)
  uint64_t segments_counted = 0;  // live segments the node's owners count (the most of any)
  uint64_t segments_skipped = 0;  // cluster segments an owner could not count (the most)
  uint64_t partials_received = 0;
  uint64_t partials_stale = 0;
  uint64_t partials_malformed = 0;
  uint64_t merger_restarts = 0;  // the view's consumer replaced
  bool caught_up = false;
  uint64_t partials_sequence = 0;  // the last partial-stream sequence read        // the view holds
                                   // every partial published before this node started
};

class ClusterNode {
 public:
  static std::unique_ptr<ClusterNode> Connect(ClusterOptions options, const agg::Clock& clock,
                                              std::string* error);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  const agg::HashSeeds& seeds() const { return seeds_; }
  uint32_t partitions() const { return options_.partitions; }

  // The partition of an event: by session_id, else visitor_id, else event_id (a session's
  // events on one owner, so its bounce and duration are whole there).
  uint32_t PartitionOf(const analytics::EventData& event) const;

  // The node's ingest log. `read_record` calls apply(event, ingest_ms) for each event a record
  // counted (the server's LoggedEventReader), so this library does not parse ingest records.
  using RecordReader = std::function<bool(
      std::string_view record,
      const std::function<void(const analytics::EventData&, int64_t ingest_ms)>& apply)>;
  std::unique_ptr<storage::EventLog> OpenIngestLog(RecordReader read_record, std::string* error);

  // Starts the merger (the view) and the leases (the owners).
  bool StartServing(std::string* error);

  // Tick thread: merges every partial received since the last call into `view` (which must
  // have the cluster's seeds); observe(delay_seconds) for each, the time from its owner's cut
  // to this merge. A partial's live segments go into the view's segment of the same canonical
  // key, segment_id(key) (-1: not open here; skipped). Returns how many were merged.
  size_t MergeInto(agg::Aggregator& view, const std::function<void(double)>& observe,
                   const std::function<int(std::string_view key)>& segment_id = {});

  // Tick thread: the live segments this node keeps (canonical keys), for every owner of the
  // cluster to count (SegmentRegistry).
  void SetLiveSegments(const std::vector<std::string>& keys);

  ClusterStats Stats() const;

  // The node's history store (null without history_dir). Any thread.
  const storage::RollupStore* history_store() const {
    return history_ != nullptr ? &history_->store() : nullptr;
  }

 private:
  ClusterNode(ClusterOptions options, const agg::Clock& clock, std::unique_ptr<NatsSession> session)
      : options_(std::move(options)), clock_(clock), session_(std::move(session)) {}
  bool LoadConstants(std::string* error);

  const ClusterOptions options_;
  const agg::Clock& clock_;
  std::unique_ptr<NatsSession> session_;
  agg::HashSeeds seeds_;
  agg::AggregatorConfig owner_config_;
  std::unique_ptr<PartialTap> tap_;  // the merger's reads, for the history (both outlived)
  std::unique_ptr<PartialMerger> merger_;
  std::unique_ptr<ClusterHistory> history_;
  std::unique_ptr<SegmentRegistry> segments_;
  std::atomic<uint64_t> merge_failures_{0};  // deltas MergePartial refused

  mutable std::mutex owners_mu_;
  std::map<uint32_t, std::unique_ptr<PartitionOwner>> owners_;  // guarded by owners_mu_
  ClusterStats retired_;  // the counters of owners gone (AddOwnerCounters); owners_mu_
  // Last: destroyed first, so no lease callback runs while the rest goes.
  std::unique_ptr<PartitionLeases> leases_;
};

}  // namespace rta::cluster
