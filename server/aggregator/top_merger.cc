#include "server/aggregator/top_merger.h"

#include <algorithm>

namespace rta::agg::detail {

void TopMerger::Reset() {
  const size_t size = entries_.size();
  entries_.Clear();
  entries_.ShrinkIfSparse(size);
  full_min_sum_ = 0;
}

void TopMerger::Add(const SpaceSaving& summary) {
  if (summary.empty()) return;
  const uint64_t min = summary.min_count();
  full_min_sum_ += min;
  for (const SpaceSaving::Counter& counter : summary.counters()) {
    Entry& entry = *entries_.FindOrInsert(counter.key).first;
    entry.count += counter.count;
    entry.error += counter.error;
    entry.present_min += min;
  }
}

void TopMerger::Add(const TopMerger& other) {
  full_min_sum_ += other.full_min_sum_;
  other.entries_.ForEach([&](uint64_t key, const Entry& from) {
    Entry& entry = *entries_.FindOrInsert(key).first;
    entry.count += from.count;
    entry.error += from.error;
    entry.present_min += from.present_min;
  });
}

std::vector<TopItem> TopMerger::Top(size_t k, uint64_t total,
                                    const KeyDictionary& dictionary) const {
  struct Candidate {
    uint64_t key;
    uint64_t count;
    uint64_t error;
  };
  std::vector<Candidate> candidates;
  candidates.reserve(entries_.size());
  entries_.ForEach([&](uint64_t key, const Entry& entry) {
    const uint64_t absent = full_min_sum_ - entry.present_min;
    candidates.push_back({key, entry.count + absent, entry.error + absent});
  });
  auto higher = [](const Candidate& a, const Candidate& b) {
    if (a.count != b.count) return a.count > b.count;
    if (a.error != b.error) return a.error < b.error;
    return a.key < b.key;
  };
  k = std::min(k, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(k),
                    candidates.end(), higher);
  std::vector<TopItem> top;
  top.reserve(k);
  for (size_t i = 0; i < k; ++i) {
    const Candidate& c = candidates[i];
    const uint64_t lower = c.count - c.error;
    const uint64_t count = std::min(c.count, total);
    TopItem& item = top.emplace_back();
    item.key = std::string(dictionary.Find(c.key));
    item.count = count;
    item.error = count > lower ? count - lower : 0;
    item.share = total == 0 ? 0.0 : static_cast<double>(count) / static_cast<double>(total);
  }
  return top;
}

}  // namespace rta::agg::detail
