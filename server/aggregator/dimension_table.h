#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/aggregator/flat_map.h"
#include "server/aggregator/state_codec.h"

namespace rta::agg::detail {

// The values of one dimension (country or device) that have their own series: the first `cap`
// distinct values in the order the tick thread merges them; every later value folds into
// "__other__", which becomes a series the first time something folds. Series are never removed
// while the aggregator lives (a value that stops occurring reports 0), so a series index is
// stable and new series are appended. A client value that is literally "__other__" lands in that
// series without counting as folded.
//
// Not thread-safe: the tick thread owns it.
class DimensionTable {
 public:
  explicit DimensionTable(uint32_t cap) : cap_(cap) {}

  // The series index of a value (hash = detail::HashBytes(value, kSeedKey), NonZero); sets
  // *folded when the value went to __other__ because the cap was reached.
  uint32_t Resolve(uint64_t hash, std::string_view value, bool* folded);

  // Series labels, by series index.
  const std::vector<std::string>& values() const { return values_; }

  // Checkpoint format (state_codec.h). Load() replaces the contents of an empty table of the
  // same cap and fails on indexes or counts that do not fit.
  void Save(StateWriter& out) const;
  bool Load(StateReader& in);

 private:
  uint32_t OtherIndex();

  // Longer values are cut at ingest (max_dimension_value_bytes applies to ranked values only;
  // countries and devices are bounded by the event's field limit).
  static constexpr size_t kMaxValueBytes = 1 << 16;

  uint32_t cap_;
  uint32_t admitted_ = 0;
  int64_t other_index_ = -1;
  FlatMap<uint32_t> index_;  // hash -> series index, for admitted values
  std::vector<std::string> values_;
};

}  // namespace rta::agg::detail
