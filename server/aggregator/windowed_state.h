#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "server/aggregator/counters.h"
#include "server/aggregator/dimension_table.h"
#include "server/aggregator/hyperloglog.h"
#include "server/aggregator/key_dictionary.h"
#include "server/aggregator/metric_catalog.h"
#include "server/aggregator/quantile_sketch.h"
#include "server/aggregator/session_table.h"
#include "server/aggregator/shard_delta.h"
#include "server/aggregator/snapshot.h"
#include "server/aggregator/space_saving.h"
#include "server/aggregator/state_codec.h"
#include "server/aggregator/time_key.h"
#include "server/aggregator/top_merger.h"

namespace rta::agg::detail {

// The aggregates of one second, one minute, or since start. Sketches and summaries are
// allocated on first use and kept when the bucket is reused for a later time.
struct WindowBucket {
  int64_t tag = std::numeric_limits<int64_t>::min();  // the second or minute held
  BucketCounters counters;
  std::unique_ptr<HyperLogLog> visitors;
  bool has_visitors = false;
  std::unique_ptr<QuantileSketch> page_loads;
  std::array<std::unique_ptr<SpaceSaving>, kRankedCount> ranked;
  std::array<std::vector<uint64_t>, kDimensionCount> dimensions;  // by series index

  void Reset(int64_t new_tag);
};

// Every value of one window, computed at a tick.
struct WindowResult {
  BucketCounters counters;
  double unique_visitors = 0.0;
  double page_load_p50 = 0.0;
  double page_load_p95 = 0.0;
  double page_load_p99 = 0.0;
  std::array<std::vector<TopItem>, kRankedCount> top;
  std::array<std::vector<uint64_t>, kDimensionCount> dimensions;  // by series index
  SessionTotals sessions;
};

// What a tick reports: the four windows plus the clock-time values shared by all of them.
struct TickMetrics {
  std::array<WindowResult, kWindowCount> windows;  // kWindows order
  double events_per_second = 0.0;
  double events_per_second_10s = 0.0;
  uint64_t active_sessions = 0;
  std::array<const std::vector<std::string>*, kDimensionCount> dimension_values{};
};

// The global windows, by event time, sliding with the clock:
//   - a ring of per-second buckets covering the last kSecondSpan (300) seconds plus the future
//     allowance: WINDOW_1M sums the seconds > now - 60, WINDOW_5M those > now - 300;
//   - a ring of per-minute buckets: WINDOW_1H sums the current minute and the 59 before, so it is
//     minute-granular and covers between 59 and 60 minutes of event time;
//   - the since-start total (WINDOW_TOTAL).
// Every window also includes accepted events time-stamped in the future (up to
// max_event_future_seconds). A bucket leaves a window when the clock passes it (expiry by clock):
// windows select buckets by tag, and a ring slot is reset when a later time reuses it.
// Sessions and their metrics come from the SessionTable; top-k lists from per-bucket
// Space-Saving summaries merged by TopMerger; unique visitors from per-bucket HyperLogLogs merged
// register-wise; quantiles from per-bucket DDSketches summed.
//
// Incremental: summing 300 seconds and 60 minutes of sketches is most of a tick, and with ticks
// every 100 ms (or an early tick per message for push_on_change subscribers) almost all of it is
// the same from one tick to the next. So the closed part of each window (the seconds before the
// current one, the minutes before the current one) is summed once and kept until the clock
// reaches the next second (minute), or until a late event changes a bucket in that part; a tick
// then only adds the current and future buckets to it. Every sum here is order-independent
// (counts add, registers take the max, Space-Saving merges add), so the result is the same as
// summing every bucket afresh.
//
// Not thread-safe: owned by the tick thread (stats counters are atomics readable anywhere).
class WindowedState {
 public:
  // `overflow_key`: the hash of kOtherValue as Aggregator hashes ranked keys; ranked values whose
  // text does not fit in the key dictionary's budget are counted under it.
  WindowedState(const AggregatorConfig& config, uint64_t overflow_key);
  ~WindowedState();
  WindowedState(const WindowedState&) = delete;
  WindowedState& operator=(const WindowedState&) = delete;

  // Folds one shard delta in, as seen at clock time now_ms.
  void Merge(const ShardDelta& delta, int64_t now_ms);

  // Periodic housekeeping: expires idle sessions and drops texts no summary needs.
  void Maintain(int64_t now_ms);

  // Computes every window at clock time now_ms. `out` keeps pointers into this object.
  void Compute(int64_t now_ms, TickMetrics* out);

  // Checkpoint format (state_codec.h): every bucket of both rings and the total, the dimension
  // tables, the key dictionary, the sessions, the ingest-rate ring, the housekeeping clocks and
  // the stats counters. The sums of the closed parts are not saved: Load() marks them stale, so
  // the next Compute() sums them afresh (the same result, see the class comment). Load() must be
  // called on a freshly constructed state with the same config (ring sizes, top_k_capacity,
  // cardinality cap; the caller checks them first); on failure the state is unspecified and
  // must be discarded.
  void Save(StateWriter& out) const;
  bool Load(StateReader& in);

  uint64_t dimension_values_folded() const { return folded_.load(std::memory_order_relaxed); }
  uint64_t sessions_dropped() const { return sessions_dropped_.load(std::memory_order_relaxed); }
  size_t tracked_sessions() const { return sessions_.size(); }
  size_t dictionary_size() const { return dictionary_.size(); }
  uint64_t dictionary_bytes() const { return dictionary_bytes_.load(std::memory_order_relaxed); }
  uint64_t ranked_values_folded() const {
    return ranked_folded_.load(std::memory_order_relaxed);
  }

 private:
  class Accumulator;

  void SumClosedSeconds(int64_t now_second);
  void SumClosedMinutes(int64_t now_minute);
  WindowBucket* SecondBucket(int64_t second, int64_t now_second);
  WindowBucket* MinuteBucket(int64_t minute, int64_t now_second);
  void EnsureRanked(WindowBucket* bucket, size_t kind) const;
  void ExpireSessions(int64_t now_second);
  void CollectDictionary();
  uint64_t AdmitRankedKey(uint64_t key, std::string_view text, uint64_t count, int64_t now_second);

  AggregatorConfig config_;
  int64_t future_seconds_;
  int64_t future_minutes_;
  std::vector<WindowBucket> seconds_;
  std::vector<WindowBucket> minutes_;
  WindowBucket total_;
  std::array<DimensionTable, kDimensionCount> dimensions_;
  KeyDictionary dictionary_;
  uint64_t overflow_key_;
  int64_t budget_collect_second_ = std::numeric_limits<int64_t>::min();
  size_t dictionary_live_after_collect_ = 0;
  SessionTable sessions_;
  int64_t last_session_sweep_second_ = std::numeric_limits<int64_t>::min();
  int64_t swept_for_space_second_ = std::numeric_limits<int64_t>::min();
  std::array<IngestCount, 16> ingest_counts_{};
  std::unique_ptr<Accumulator> accumulator_;
  // The closed parts of the windows (see the class comment), for the clock second (minute) in
  // closed_at_second_ (closed_at_minute_), and the oldest second (minute) bucket that Merge()
  // changed since they were summed.
  std::unique_ptr<Accumulator> closed_1m_;       // seconds [now - 59, now - 1]
  std::unique_ptr<Accumulator> closed_5m_rest_;  // seconds [now - 299, now - 60]
  std::unique_ptr<Accumulator> closed_1h_;       // minutes [now - 59, now - 1]
  int64_t closed_at_second_ = std::numeric_limits<int64_t>::min();
  int64_t closed_at_minute_ = std::numeric_limits<int64_t>::min();
  int64_t oldest_changed_second_ = std::numeric_limits<int64_t>::min();
  int64_t oldest_changed_minute_ = std::numeric_limits<int64_t>::min();
  std::atomic<uint64_t> folded_{0};
  std::atomic<uint64_t> sessions_dropped_{0};
  std::atomic<uint64_t> ranked_folded_{0};
  std::atomic<uint64_t> dictionary_bytes_{0};
};

}  // namespace rta::agg::detail
