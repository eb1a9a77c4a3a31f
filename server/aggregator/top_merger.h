#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/aggregator/flat_map.h"
#include "server/aggregator/key_dictionary.h"
#include "server/aggregator/snapshot.h"
#include "server/aggregator/space_saving.h"

namespace rta::agg::detail {

// Merges the Space-Saving summaries of a window's buckets into one top-k list that keeps the
// Space-Saving guarantee (true count in [count - error, count]):
//  - a key monitored by a summary contributes that summary's count and error;
//  - a key NOT monitored by a FULL summary may still have occurred up to that summary's
//    min_count() times there, so that min is added to both its count and its error;
//  - a summary that is not full is exact, so a key it lacks occurred 0 times there.
// Counts are finally capped at the window's exact total of the kind (no key can exceed it), with
// the error shrunk so that the lower bound is unchanged.
//
// Reset() keeps capacity; Top() does not modify the merger, so a window can be extended (1m,
// then the rest of 5m) and read at each step. Not thread-safe.
class TopMerger {
 public:
  void Reset();
  void Add(const SpaceSaving& summary);
  // Adds what another merger has taken in, as if its summaries had been added here.
  void Add(const TopMerger& other);
  std::vector<TopItem> Top(size_t k, uint64_t total, const KeyDictionary& dictionary) const;

 private:
  struct Entry {
    uint64_t count = 0;
    uint64_t error = 0;
    uint64_t present_min = 0;  // sum of min_count() of the full summaries that monitor the key
  };
  FlatMap<Entry> entries_;
  uint64_t full_min_sum_ = 0;  // sum of min_count() over all full summaries added
};

}  // namespace rta::agg::detail
