#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "analytics.pb.h"
#include "server/aggregator/clock.h"
#include "server/aggregator/snapshot.h"

namespace rta::agg {

struct AggregatorConfig {
  int64_t dedupe_horizon_seconds = 600;      // an event_id seen again within this counts once
  // 2^22 slots of 8 bytes (32 MiB); holds DedupeTable::CapacityIdsFor(2^22) = 3,145,728 ids
  // accepted within one horizon without early evictions.
  uint32_t dedupe_capacity_log2 = 22;
  int64_t max_event_age_seconds = 3600;      // older events are rejected
  int64_t max_event_future_seconds = 60;     // events further ahead are rejected
  uint32_t dimension_cardinality_cap = 100;  // distinct values per dimension before __other__
  uint32_t top_k = 10;                       // entries reported per top-k list
  uint32_t top_k_capacity = 200;             // Space-Saving counters per bucket summary
  uint32_t max_sessions = 1'000'000;         // sessions tracked at once
  int64_t active_session_seconds = 300;      // active_sessions: an event within this
  // page / referrer / utm_campaign values longer than this are cut (at a UTF-8 boundary) before
  // they are counted: every byte of a ranked value is copied into a shard delta each tick and
  // kept in the key dictionary while a top-k summary monitors it.
  uint32_t max_dimension_value_bytes = 256;
  // Budget for the texts of ranked values (KeyDictionary); a new value that does not fit is
  // counted under "__other__" instead (AggregatorStats::ranked_values_folded).
  uint64_t key_dictionary_max_bytes = 32ull << 20;
};

// Why Ingest() refused or skipped an event. Stable names: they are Prometheus label values.
enum class IngestOutcome {
  kAccepted,
  kDuplicate,  // event_id seen within the dedupe horizon
  kInvalid,    // a field is malformed (see IngestResult::field / reason)
  kTooOld,     // event time older than max_event_age_seconds
  kInFuture,   // event time more than max_event_future_seconds ahead
};
std::string_view OutcomeName(IngestOutcome outcome);  // "accepted", "duplicate", "invalid", ...

// Signals found by session analysis (AnalyzeSession) that dashboards see as metrics.
enum class SessionSignal {
  kRageClick,        // metric rage_clicks
  kBotSuspected,     // metric suspected_bots
  kCartAbandonment,  // metric cart_abandonments
};

struct IngestResult {
  IngestOutcome outcome = IngestOutcome::kAccepted;
  std::string_view field;  // the offending field for kInvalid/kTooOld/kInFuture, else empty
  std::string reason;      // human reason for refusals, else empty (no allocation on success)
};

// Counters of things the aggregator did on its own, for Prometheus. Monotonic.
struct AggregatorStats {
  uint64_t dimension_values_folded = 0;  // events whose country/device went to __other__
  // Ids still inside the horizon dropped from the dedupe table because both of a new id's
  // buckets were full of live ids: a retry of such an id would count twice. Nonzero means more
  // distinct ids arrived within one horizon than dedupe_capacity_ids.
  uint64_t dedupe_early_evictions = 0;
  uint64_t dedupe_capacity_ids = 0;           // constant: ids per horizon the table is built for
  uint64_t dimension_values_truncated = 0;    // ranked values cut to max_dimension_value_bytes
  uint64_t ranked_values_folded = 0;          // ranked values counted as __other__ (budget full)
  uint64_t key_dictionary_bytes = 0;          // gauge: accounted bytes of the key dictionary
  uint64_t sessions_dropped = 0;         // sessions not tracked because max_sessions was reached
  uint64_t ticks = 0;
};

// The in-memory heart of the server: takes events from any number of threads and produces
// immutable snapshots of every metric over sliding event-time windows.
//
// Thread-safety: Ingest() may be called concurrently from any threads and takes no mutex.
// Tick() must be called from one thread at a time (the server's timer thread). Latest() and
// stats() may be called from any thread. Destruction requires that no call is in progress.
class Aggregator {
 public:
  Aggregator(AggregatorConfig config, const Clock& clock);
  ~Aggregator();
  Aggregator(const Aggregator&) = delete;
  Aggregator& operator=(const Aggregator&) = delete;

  // Validates, de-duplicates and counts one event. Lock-free; allocation-free on success.
  IngestResult Ingest(const analytics::EventData& event);

  // Counts one session-analysis signal at its event time. Same thread-safety as Ingest().
  void RecordSignal(SessionSignal signal, int64_t event_time_ms);

  // Folds everything ingested since the previous tick into the windows, builds a new snapshot
  // at the clock's current time and publishes it. Returns the published snapshot.
  std::shared_ptr<const Snapshot> Tick();

  // The latest published snapshot (an empty one with sequence 0 before the first tick).
  std::shared_ptr<const Snapshot> Latest() const;

  AggregatorStats stats() const;
  uint64_t epoch() const;

  // Every metric name a snapshot can contain, for validating subscription filters.
  static std::span<const std::string_view> MetricNames();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rta::agg
