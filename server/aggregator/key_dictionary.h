#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace rta::agg::detail {

// The text of every key hash the top-k summaries may report (pages, referrers, campaigns).
// Summaries hold only 64-bit hashes; their texts arrive with each shard delta (which copies the
// text of every key it counts, once per tick) and are kept here while some summary still
// monitors the hash. Collect() drops the rest, so memory follows what the summaries hold, not
// every key ever seen.
//
// Not thread-safe: the tick thread owns it.
class KeyDictionary {
 public:
  void Intern(uint64_t hash, std::string_view text) { texts_.try_emplace(hash, text); }

  std::string_view Find(uint64_t hash) const {
    auto it = texts_.find(hash);
    return it == texts_.end() ? std::string_view() : std::string_view(it->second);
  }

  size_t size() const { return texts_.size(); }

  // Keeps only the hashes in `live`.
  void Collect(const std::unordered_set<uint64_t>& live) {
    std::erase_if(texts_, [&](const auto& entry) { return !live.contains(entry.first); });
  }

 private:
  std::unordered_map<uint64_t, std::string> texts_;
};

}  // namespace rta::agg::detail
