#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "server/aggregator/flat_map.h"
#include "server/aggregator/state_codec.h"

namespace rta::agg {

// Weighted Space-Saving (Metwally, Agrawal, El Abbadi 2005) over 64-bit key hashes: at most
// `capacity` counters. A key not monitored replaces the minimum counter and inherits its count as
// its error, so for every monitored key the true weight lies in [count - error, count], and every
// key that is not monitored has a true weight of at most min_count(). Exact while the number of
// distinct keys is at most the capacity.
//
// Add() is O(log capacity): the counters form a min-heap with a hash index of heap positions.
// Not thread-safe.
class SpaceSaving {
 public:
  struct Counter {
    uint64_t key = 0;
    uint64_t count = 0;
    uint64_t error = 0;
  };

  explicit SpaceSaving(uint32_t capacity);

  // `key` must be non-zero (detail::NonZero).
  void Add(uint64_t key, uint64_t weight);

  // Every counter, in no particular order.
  std::span<const Counter> counters() const { return heap_; }
  size_t capacity() const { return capacity_; }
  bool full() const { return heap_.size() >= capacity_; }
  // The bound on the weight of any key that is not monitored: the smallest count when full, else 0.
  uint64_t min_count() const { return full() && !heap_.empty() ? heap_[0].count : 0; }
  uint64_t total() const { return total_; }
  bool empty() const { return heap_.empty(); }

  // Up to k counters, highest count first (ties: lower error first, then key).
  std::vector<Counter> Top(size_t k) const;

  void Clear();

  // Checkpoint format (state_codec.h): the total and the heap array in its order (so that ties
  // are broken exactly as before). Load() replaces the contents and fails on more counters than
  // the capacity, a zero or repeated key, or a broken heap order.
  void Save(detail::StateWriter& out) const;
  bool Load(detail::StateReader& in);

 private:
  void SiftDown(size_t i);
  void SiftUp(size_t i);
  void Place(size_t i, const Counter& counter);

  size_t capacity_;
  uint64_t total_ = 0;
  std::vector<Counter> heap_;           // min-heap by count
  detail::FlatMap<uint32_t> position_;  // key -> index in heap_
};

}  // namespace rta::agg
