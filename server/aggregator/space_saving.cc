#include "server/aggregator/space_saving.h"

#include <algorithm>

namespace rta::agg {

SpaceSaving::SpaceSaving(uint32_t capacity) : capacity_(std::max<uint32_t>(capacity, 1)) {
  heap_.reserve(capacity_);
  position_.Reserve(capacity_);
}

void SpaceSaving::Place(size_t i, const Counter& counter) {
  heap_[i] = counter;
  *position_.FindOrInsert(counter.key).first = static_cast<uint32_t>(i);
}

void SpaceSaving::SiftDown(size_t i) {
  const Counter moving = heap_[i];
  const size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1].count < heap_[child].count) ++child;
    if (heap_[child].count >= moving.count) break;
    Place(i, heap_[child]);
    i = child;
  }
  Place(i, moving);
}

void SpaceSaving::SiftUp(size_t i) {
  const Counter moving = heap_[i];
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (heap_[parent].count <= moving.count) break;
    Place(i, heap_[parent]);
    i = parent;
  }
  Place(i, moving);
}

void SpaceSaving::Add(uint64_t key, uint64_t weight) {
  if (weight == 0) return;
  total_ += weight;
  if (uint32_t* position = position_.Find(key)) {
    heap_[*position].count += weight;
    SiftDown(*position);
    return;
  }
  if (heap_.size() < capacity_) {
    heap_.push_back({key, weight, 0});
    SiftUp(heap_.size() - 1);
    return;
  }
  // Replace the minimum: the newcomer may have been counted up to min times before.
  const uint64_t min = heap_[0].count;
  position_.Erase(heap_[0].key);
  heap_[0] = {key, min + weight, min};
  SiftDown(0);
}

std::vector<SpaceSaving::Counter> SpaceSaving::Top(size_t k) const {
  std::vector<Counter> top(heap_.begin(), heap_.end());
  auto higher = [](const Counter& a, const Counter& b) {
    if (a.count != b.count) return a.count > b.count;
    if (a.error != b.error) return a.error < b.error;
    return a.key < b.key;
  };
  k = std::min(k, top.size());
  std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(k), top.end(), higher);
  top.resize(k);
  return top;
}

void SpaceSaving::Save(detail::StateWriter& out) const {
  out.U64(total_);
  out.U64(heap_.size());
  for (const Counter& counter : heap_) {
    out.U64(counter.key);
    out.U64(counter.count);
    out.U64(counter.error);
  }
}

bool SpaceSaving::Load(detail::StateReader& in) {
  Clear();
  const uint64_t total = in.U64();
  const size_t n = in.Count(3 * sizeof(uint64_t), capacity_);
  for (size_t i = 0; i < n && in.ok(); ++i) {
    Counter counter;
    counter.key = in.U64();
    counter.count = in.U64();
    counter.error = in.U64();
    if (counter.key == 0 || position_.Find(counter.key) != nullptr) {
      in.Fail("corrupt checkpoint: Space-Saving key repeated or zero");
      break;
    }
    if (i > 0 && heap_[(i - 1) / 2].count > counter.count) {
      in.Fail("corrupt checkpoint: Space-Saving heap order");
      break;
    }
    heap_.push_back(counter);
    *position_.FindOrInsert(counter.key).first = static_cast<uint32_t>(i);
  }
  if (!in.ok()) {
    Clear();
    return false;
  }
  total_ = total;
  return true;
}

void SpaceSaving::Clear() {
  heap_.clear();
  position_.Clear();
  total_ = 0;
}

}  // namespace rta::agg
