#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "analytics.pb.h"

namespace rta::agg {

// Live segments: the live windows of only the events that match some `dimension = value`
// conditions (a dashboard watching one campaign, country or device), kept beside the global
// windows by the same aggregator (Aggregator::OpenSegment).
//
// The dimensions a segment can name, in this order everywhere: the history's segments
// (server/storage/rollup_accumulator.h) use this list too.
inline constexpr size_t kSegmentDimensionCount = 7;
inline constexpr std::array<std::string_view, kSegmentDimensionCount> kSegmentDimensions = {
    "country", "device", "page", "referrer", "utm_source", "utm_campaign", "event_type"};
// Acquisition belongs to the session, as in the history: an event that names no referrer,
// utm_source or utm_campaign of its own matches a condition on one of them when its session
// matched it earlier (a purchase three pages after a campaign's landing counts for the
// campaign).
inline constexpr std::array<bool, kSegmentDimensionCount> kSegmentSessionScoped = {
    false, false, false, true, true, true, false};
// An event without a value for a dimension matches this value (as the history stores it).
inline constexpr std::string_view kSegmentNoneValue = "(none)";
// Values are compared on their first this many bytes (cut at a UTF-8 boundary), as stored.
inline constexpr size_t kSegmentMaxValueBytes = 256;
// Segments open at once, at most (ids are bits of one word on the ingest path).
inline constexpr size_t kMaxLiveSegments = 64;

// One condition of a segment. `value` as a filter names it: kSegmentNoneValue for "no value".
struct SegmentCondition {
  size_t dimension = 0;  // index into kSegmentDimensions
  std::string value;

  bool operator==(const SegmentCondition&) const = default;
};

// A segment's canonical key: its conditions sorted by dimension (in place), each as the
// dimension's index as a digit, the value's length in decimal, ':', the value. The same
// conditions in any order give the same key; it names the segment across the nodes of a
// cluster (server/cluster/segment_registry.h).
std::string SegmentKeyOf(std::vector<SegmentCondition>* conditions);
// The conditions of a key SegmentKeyOf made; false when `key` is not one.
bool ParseSegmentKey(std::string_view key, std::vector<SegmentCondition>* conditions);

// The event's own values of the dimensions, in kSegmentDimensions order ("" when it has none):
// as sent (the history's rollups read them so), and cut to kSegmentMaxValueBytes at a UTF-8
// boundary, as segments compare them (read once per event for every open segment).
using SegmentFields = std::array<std::string_view, kSegmentDimensionCount>;
SegmentFields RawSegmentFieldsOf(const analytics::EventData& event);
SegmentFields SegmentFieldsOf(const analytics::EventData& event);

namespace detail {

// The sessions of one segment whose acquisition matched its session-scoped conditions: a set
// of session hashes that any number of ingest threads read and add to without a lock (linear
// probing over atomic words, insert by CAS, no removal). Why our own: the ingest path takes no
// mutex, and a set that only grows within a fixed array is a few lines. Bounded: the
// aggregator starts a new set once this one is a quarter full and keeps the previous one for
// lookups, so a session is remembered for between one and two sets' worth of new sessions.
class SessionMembers {
 public:
  explicit SessionMembers(uint32_t capacity_log2);
  bool Contains(uint64_t session_hash) const;
  // Adds the hash unless present; gives up (and counts it in dropped()) when kMaxProbes slots
  // in a row are taken, which only a set far beyond half full sees.
  void Insert(uint64_t session_hash);
  size_t size() const { return size_.load(std::memory_order_relaxed); }
  size_t capacity() const { return mask_ + 1; }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kMaxProbes = 32;
  const size_t mask_;
  std::unique_ptr<std::atomic<uint64_t>[]> slots_;
  std::atomic<size_t> size_{0};
  std::atomic<uint64_t> dropped_{0};
};

// What the ingest path reads of an open segment. Immutable while the segment is open, except
// the two set pointers, which the tick thread swaps (see Aggregator::Impl's live-segment notes).
struct SegmentMatcher {
  std::vector<SegmentCondition> conditions;
  bool session_scoped = false;  // some condition is on a session-scoped dimension
  std::atomic<SessionMembers*> members{nullptr};
  std::atomic<SessionMembers*> previous_members{nullptr};

  // Whether the event belongs to the segment. An event whose own values satisfy every
  // session-scoped condition adds its session to `members`; one that names none of a
  // session-scoped dimension takes its session's membership for it.
  bool Matches(const SegmentFields& fields, uint64_t session_hash) const;
};

}  // namespace detail
}  // namespace rta::agg
