#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/aggregator/counters.h"
#include "server/aggregator/event_validation.h"
#include "server/aggregator/flat_map.h"
#include "server/aggregator/hyperloglog.h"
#include "server/aggregator/live_segment.h"
#include "server/aggregator/metric_catalog.h"
#include "server/aggregator/quantile_sketch.h"
#include "server/aggregator/time_key.h"

namespace rta::agg::detail {

// A string key of an event with its hash (detail::HashBytes with kSeedKey, NonZero); hash 0 means
// "not counted".
struct KeyRef {
  uint64_t hash = 0;
  std::string_view text;
};

// One validated, de-duplicated event reduced to what the windows need. Built before the shard is
// claimed, so that the shard's busy window holds only the updates.
struct EventRecord {
  int64_t event_ms = 0;
  int64_t ingest_second = 0;  // clock second at ingest, for events_per_second
  EventKind kind = EventKind::kOther;
  double value = 0.0;
  uint64_t visitor_hash = 0;                       // 0: no visitor_id
  uint64_t session_hash = 0;                       // 0: no session_id
  std::array<KeyRef, kRankedCount> ranked;         // page, referrer, utm_campaign of page views
  std::array<KeyRef, kDimensionCount> dimensions;  // country, device ("unknown" when empty)
};

// An exact count of one key, with its text in the delta's arena (copied once per delta).
struct KeyCount {
  uint64_t count = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
};

// What a session did within one delta.
struct SessionDelta {
  int64_t first_ms = 0;
  int64_t last_ms = 0;
  uint32_t page_views = 0;
  uint32_t conversions = 0;
};

// Everything the events of one time key (second, minute or total-only) added during one tick.
struct DeltaBucket {
  TimeKey key;
  BucketCounters counters;
  std::unique_ptr<HyperLogLog> visitors;  // allocated on first use, kept across ticks
  bool has_visitors = false;
  std::unique_ptr<QuantileSketch> page_loads;
  std::array<FlatMap<KeyCount>, kRankedCount> ranked;
  std::array<FlatMap<KeyCount>, kDimensionCount> dimensions;

  void Clear();
};

// Events per clock second of ingest, for events_per_second.
struct IngestCount {
  int64_t second = std::numeric_limits<int64_t>::min();
  uint64_t count = 0;
};

// The per-shard "active delta": what the events one ingest thread accepted since the last tick
// did to the windows, in plain (non-atomic) data.
//
// Ownership protocol (see Aggregator::Impl): exactly one ingest thread writes a delta while it
// holds its shard's busy flag; the tick thread swaps it out, waits for the flag to drop, and from
// then on owns it alone: merges it into the windowed state, Clear()s it and installs it again as
// the shard's spare. Clear() keeps every allocation a normal tick needs (up to kRetainedBuckets
// time keys, map capacities, the string arena), so the ingest path stops allocating once the
// delta has grown to its working size; a backfill spread over many seconds allocates a few more
// buckets, which are freed again after that tick.
class ShardDelta {
 public:
  static constexpr size_t kRetainedBuckets = 8;
  static constexpr size_t kIngestSeconds = 16;

  ShardDelta() = default;
  ShardDelta(const ShardDelta&) = delete;
  ShardDelta& operator=(const ShardDelta&) = delete;

  // Ingest side.
  void Apply(const EventRecord& event, TimeKey key);
  void AddSignal(size_t signal, TimeKey key);

  // The delta of live segment `id` (allocated on its first event, kept like the rest).
  ShardDelta& Segment(size_t id);

  // Tick side.
  bool empty() const { return !touched_; }
  // The live segments this delta holds events of (bit i: Segment(i)), and one of them.
  uint64_t touched_segments() const { return touched_segments_; }
  const ShardDelta& segment(size_t id) const { return *segments_[id]; }
  // Frees the (cleared) delta of a segment that was closed.
  void DropSegment(size_t id) { segments_[id].reset(); }
  std::span<const std::unique_ptr<DeltaBucket>> buckets() const { return {buckets_.data(), used_}; }
  const FlatMap<SessionDelta>& sessions() const { return sessions_; }
  const std::array<IngestCount, kIngestSeconds>& ingest_counts() const { return ingest_counts_; }
  std::string_view Text(const KeyCount& key) const {
    return std::string_view(arena_).substr(key.offset, key.length);
  }
  void Clear();
  // Clears and forgets the sub-deltas of live segments only (Clear() does it too): the
  // partials of cluster mode do not carry segments, and a segment id must hold no events when
  // the merge after its close drops its sub-delta.
  void ClearSegments();

  // Rebuilding a delta decoded from a partial (partial_codec.h), on a cleared delta. The
  // decoder validates every value first; these only keep the delta's own invariants.
  // A new bucket for `key` (no search: a partial may carry a time key twice, which the merge
  // adds up like two buckets of one key).
  DeltaBucket& AppendBucket(TimeKey key);
  // Adds `key` with its text and count to one of a bucket's maps; false (nothing added) when
  // the map already holds that hash.
  bool AddKeyCount(FlatMap<KeyCount>& map, uint64_t hash, std::string_view text, uint64_t count);
  // False (nothing added) when the delta already holds that session.
  bool AddSession(uint64_t hash, const SessionDelta& session);
  // Slot `slot` (< kIngestSeconds) of the ingest counts.
  void SetIngestCount(size_t slot, IngestCount count) {
    touched_ = true;
    ingest_counts_[slot] = count;
  }

 private:
  DeltaBucket& BucketFor(TimeKey key);
  void AddKey(FlatMap<KeyCount>& map, const KeyRef& key);

  std::vector<std::unique_ptr<DeltaBucket>> buckets_;  // [0, used_) hold this tick's keys
  size_t used_ = 0;
  DeltaBucket* last_ = nullptr;  // most events hit the bucket of the previous one
  FlatMap<SessionDelta> sessions_;
  std::string arena_;  // texts of the keys in the buckets' maps
  std::array<IngestCount, kIngestSeconds> ingest_counts_{};
  bool touched_ = false;
  std::array<std::unique_ptr<ShardDelta>, kMaxLiveSegments> segments_;
  uint64_t touched_segments_ = 0;
};

}  // namespace rta::agg::detail
