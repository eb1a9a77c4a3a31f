#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/aggregator/live_segment.h"
#include "server/storage/rollup_store.h"

namespace rta::storage {

// The dimensions a history segment can name, in this order everywhere (stable names: they are
// the segment keys' prefixes and RangeQuery's dimension names): the live segments' list
// (server/aggregator/live_segment.h), so that a filter means the same in both.
inline constexpr size_t kRollupDimensionCount = agg::kSegmentDimensionCount;
inline constexpr const auto& kRollupDimensions = agg::kSegmentDimensions;
// The acquisition dimensions: referrer, utm_source and utm_campaign belong to the session. An
// event that names none of its own (a purchase three pages after the landing) is counted under
// its session's (the first event's), so "conversions where utm_campaign = spring" counts the
// purchases of the sessions the campaign brought, as analytics tools attribute them.
inline constexpr const auto& kRollupSessionScoped = agg::kSegmentSessionScoped;
// An empty value is stored as this (a page view without a referrer is direct traffic).
inline constexpr std::string_view kRollupNoneValue = agg::kSegmentNoneValue;
// Values beyond a dimension's cap are stored as this, as in the live windows.
inline constexpr std::string_view kRollupOtherValue = "__other__";

// The longest value the history keeps (longer ones are cut at a UTF-8 boundary).
inline constexpr size_t kRollupMaxValueBytes = agg::kSegmentMaxValueBytes;

// Index into kRollupDimensions, or -1.
int RollupDimensionIndex(std::string_view name);
// The segment key of one condition: "country=DE".
std::string SegmentKey(size_t dimension, std::string_view value);
// The segment key of two conditions on two different dimensions, `first = first_value` and
// `second = second_value` (both orders are stored, so either can lead). Pair cells are kept at
// day resolution with the counters only (docs/design/history-and-segments.md). The form is
// binary, so that no value can make two keys equal: a 0x02 byte (before every dimension name,
// so pairs never mix with single conditions), the two dimension indexes, the first value's
// length in two bytes (never NUL, the store's separator), the first value, the second value.
// Values are at most kRollupMaxValueBytes.
std::string PairSegmentKey(size_t first, std::string_view first_value, size_t second,
                           std::string_view second_value);
// The prefix of every pair key of `first = first_value` with any value of `second`: what
// follows it in a key is the second value (a breakdown within a filter scans it).
std::string PairSegmentPrefix(size_t first, std::string_view first_value, size_t second);

// What the history needs of one accepted event (the server fills it from an EventData).
struct RollupEvent {
  enum class Kind : uint8_t { kOther, kPageView, kPurchase, kSignup, kPageLoad };
  int64_t event_ms = 0;
  int64_t ingest_ms = 0;  // when the server took it: session memory expires by this clock
  Kind kind = Kind::kOther;
  double value = 0;           // revenue of a purchase, milliseconds of a page load
  uint64_t visitor_hash = 0;  // 0: no visitor id
  uint64_t session_hash = 0;  // 0: no session id
  std::array<std::string_view, kRollupDimensionCount> dimensions;  // "" for none
};

// Folds events into the rollup cells they touch, in memory, until TakeWrites() hands them to
// the store as merge deltas. Each event touches 17 cells with sketches: the minute total, and
// at hour and day resolution the total plus one single-condition cell per dimension; and at
// day resolution the 21 pairs of its dimensions' values, counters only, each written in both
// orders (PairSegmentKey). Two conditions, or one condition with a breakdown, are then exact
// for the additive KPIs; visitors and page-load quantiles of a pair are not kept
// (docs/design/history-and-segments.md). Pairs are folded under integer keys (each value gets
// a small id when it is admitted), so they cost a hash of 16 bytes each, not of a string.
//
// Dimension values are capped per dimension (`max_values_per_dimension`): the first values seen
// are admitted, later new ones count as __other__. Admitted() values must survive restarts (a
// value must not move to __other__ after one), so the writer persists what new_values()
// returns and calls Admit() with them at start.
//
// Acquisition: see kRollupSessionScoped; an event of a session that is not tracked (beyond
// max_sessions) keeps its own values.
//
// Sessions: a session is counted once, in the cells of its first event; it is a bounce while it
// has exactly one page view, so the bounce counter of its first event's cells gets +1 at its
// first page view and -1 at its second (counters are added modulo 2^64, so the sum of a cell's
// deltas is the count). An event more than `session_timeout_ms` of event time after its
// session's last one starts a new session (a new visit), judged per session: events of
// different sessions may come in any order (a backfill over several streams), a session's own
// come in order (event_reporter keeps a session on one stream).
//
// Memory: a session is forgotten `session_timeout_ms` of *ingest* time after its last event
// (during a backfill, event time races ahead on one stream and lags on another, so it cannot
// say which sessions are over). At `max_sessions` the sessions not touched in the last
// max_sessions / 2 events are forgotten early (sessions_evicted(); by then at least half the
// table is such); one that goes on counts as a new session. The caller bounds the pending cells
// by calling TakeWrites() when pending_cells() or pending_pairs() reach its limits.
//
// Restarts: the table is persisted by the caller, in the same batch as the cells
// (TakeSessionChanges(): the sessions touched since the last call, and those forgotten), and
// read back at start with RestoreSession(). A session that spans a restart, or a failed write
// that is folded again from the log, then counts once, keeps its acquisition, and its second
// page view still takes back the bounce of its first.
//
// Not thread-safe: the rollup writer's thread owns it.
class RollupAccumulator {
 public:
  struct Limits {
    uint32_t max_values_per_dimension = 1000;
    uint32_t max_sessions = 200'000;
    int64_t session_timeout_ms = 30 * 60'000;
    // A segment's cells count visitors at this precision, the whole traffic's at 14
    // (VisitorSketch): the segments' registers are most of the history's disk.
    int segment_visitor_precision = VisitorSketch::kSegmentPrecision;
    // The whole traffic's minute cells count visitors at this precision (its hour and day
    // cells keep kTotalsPrecision): an operator's trade of the minutes' accuracy for disk.
    int minute_visitor_precision = VisitorSketch::kTotalsPrecision;
  };
  explicit RollupAccumulator(const Limits& limits);

  void Add(const RollupEvent& event);

  // A value admitted before (from the store, at start).
  void Admit(size_t dimension, std::string_view value);
  // Values admitted since the last ClearNewValues(), as (dimension, value): the writer stores
  // them with the cells, and clears them once that write succeeded.
  const std::vector<std::pair<size_t, std::string>>& new_values() const { return new_values_; }
  void ClearNewValues() { new_values_.clear(); }

  // Every pending cell as a write (a pair as two), and forgets them.
  std::vector<RollupWrite> TakeWrites();
  // Pending cells with sketches (up to ~16 KiB each), and pending pairs (~100 bytes each).
  size_t pending_cells() const { return cells_.size(); }
  size_t pending_pairs() const { return pairs_.size(); }
  uint64_t values_folded() const { return values_folded_; }
  uint64_t sessions_evicted() const { return sessions_evicted_; }

  // What changed in the session table since the last call: the sessions forgotten (expired or
  // evicted), then the stored form of each session touched. A session both forgotten and
  // touched again is in both lists; applied in this order, the state wins.
  struct SessionChanges {
    std::vector<uint64_t> forgotten;
    std::vector<std::pair<uint64_t, std::string>> states;
  };
  SessionChanges TakeSessionChanges();
  // A session as TakeSessionChanges() stored it. Fails with a message on bytes that are not
  // one; the table is then unchanged.
  bool RestoreSession(uint64_t session_hash, std::string_view state, std::string* error);
  // Forgets every session and every change not taken (a failed write: the caller restores
  // the table it last stored).
  void ForgetSessions();
  size_t session_count() const { return sessions_.size(); }

 private:
  // A value's id within its dimension: the index into values_[dimension].
  using ValueIds = std::array<uint32_t, kRollupDimensionCount>;
  struct Session {
    int64_t first_ms = 0;
    int64_t last_ms = 0;         // event time
    int64_t last_ingest_ms = 0;  // ingest time, for the memory's expiry
    uint64_t last_seen = 0;      // folds_ when last touched, for eviction
    uint32_t page_views = 0;
    ValueIds values{};   // of the first event
    bool dirty = false;  // in dirty_sessions_
  };
  struct Pending {
    Resolution resolution;
    int64_t bucket_s;
    std::string segment;
    RollupCell cell;
  };
  // A pair cell: the day, and (first dimension, its value id, second dimension, its value id)
  // with first < second, packed.
  struct PairKey {
    int64_t day_s;
    uint64_t pair;
    bool operator==(const PairKey& other) const = default;
  };
  struct PairKeyHash {
    size_t operator()(const PairKey& key) const;
  };
  // A dimension's admitted values: names by id, ids by name, and each one's segment key.
  struct Values {
    std::vector<std::string> names;
    std::vector<std::string> segments;
    std::unordered_map<std::string, uint32_t> ids;
  };

  // The id of `value` in dimension `d`, admitting it if there is room ("" is kRollupNoneValue,
  // beyond the cap kRollupOtherValue).
  uint32_t Capped(size_t d, std::string_view value);
  uint32_t Intern(size_t d, std::string_view value);
  RollupCell& Cell(Resolution resolution, int64_t time_s, std::string_view segment);
  // Applies `cell_fn(RollupCell&)` to the 17 cells with sketches of an event at `time_ms` with
  // these values, and `pair_fn(RollupCounters&)` to its 21 pairs.
  template <typename CellFn, typename PairFn>
  void ForEachCell(int64_t time_ms, const ValueIds& values, CellFn&& cell_fn, PairFn&& pair_fn);
  // Notes `hash`'s session as touched, for TakeSessionChanges().
  void MarkDirty(uint64_t hash, Session* session);
  // Forgets the sessions idle for session_timeout_ms of ingest time.
  void ExpireSessions(int64_t now_ingest_ms);
  // At max_sessions: forgets the sessions not touched in the last max_sessions / 2 folds.
  void EvictSessions();

  Limits limits_;
  std::array<Values, kRollupDimensionCount> values_;
  std::vector<std::pair<size_t, std::string>> new_values_;
  std::unordered_map<std::string, Pending> cells_;
  std::unordered_map<PairKey, RollupCounters, PairKeyHash> pairs_;
  std::string key_;  // scratch for Cell()
  std::unordered_map<uint64_t, Session> sessions_;
  std::vector<uint64_t> dirty_sessions_;      // touched since TakeSessionChanges()
  std::vector<uint64_t> forgotten_sessions_;  // erased since TakeSessionChanges()
  uint64_t folds_ = 0;            // events with a session folded so far
  int64_t newest_ingest_ms_ = 0;  // the latest ingest time seen (session expiry)
  int64_t next_expiry_ms_ = 0;
  uint64_t values_folded_ = 0;
  uint64_t sessions_evicted_ = 0;
};

}  // namespace rta::storage
