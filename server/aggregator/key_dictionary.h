#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "server/aggregator/state_codec.h"

namespace rta::agg::detail {

// The text of every key hash the top-k summaries may report (pages, referrers, campaigns).
// Summaries hold only 64-bit hashes; their texts arrive with each shard delta (which copies the
// text of every key it counts, once per tick) and are kept here while some summary still
// monitors the hash. Collect() drops the rest, so memory follows what the summaries hold, not
// every key ever seen.
//
// What the summaries hold can still be large: every per-second and per-minute bucket has its own
// summaries of top_k_capacity counters, so with a stream of distinct values the live set is
// about (362 + 63 + 1) x 200 keys per ranked kind and grows for an hour as the minute ring
// fills. Hence a byte budget: Intern() refuses a new text once bytes() would pass max_bytes and
// the caller counts that key under an overflow key instead. bytes() is an estimate of the heap
// this object holds: each text plus kEntryBytes for its node, bucket and allocation headers.
//
// Not thread-safe: the tick thread owns it.
class KeyDictionary {
 public:
  static constexpr uint64_t kEntryBytes = 80;

  explicit KeyDictionary(uint64_t max_bytes = UINT64_MAX) : max_bytes_(max_bytes) {}

  // Known or admitted: true. False when the text is new and does not fit in the budget.
  bool Intern(uint64_t hash, std::string_view text) {
    if (texts_.contains(hash)) return true;
    const uint64_t cost = CostOf(text);
    if (bytes_ + cost > max_bytes_) return false;
    texts_.emplace(hash, text);
    bytes_ += cost;
    return true;
  }

  // A text that is never refused nor collected (the overflow key itself), outside the budget.
  void Pin(uint64_t hash, std::string_view text) {
    pinned_ = hash;
    if (texts_.emplace(hash, text).second) bytes_ += CostOf(text);
  }

  std::string_view Find(uint64_t hash) const {
    auto it = texts_.find(hash);
    return it == texts_.end() ? std::string_view() : std::string_view(it->second);
  }

  size_t size() const { return texts_.size(); }
  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }

  // Checkpoint format (state_codec.h): every text but the pinned one. Load() adds them whatever
  // the budget (they were admitted under it before), so bytes() is what it was.
  void Save(StateWriter& out) const {
    out.U64(texts_.size() - (texts_.contains(pinned_) ? 1 : 0));
    for (const auto& [hash, text] : texts_) {
      if (hash == pinned_) continue;
      out.U64(hash);
      out.String(text);
    }
  }
  bool Load(StateReader& in, size_t max_text_bytes) {
    const size_t n = in.Count(2 * sizeof(uint64_t), UINT32_MAX);
    for (size_t i = 0; i < n && in.ok(); ++i) {
      const uint64_t hash = in.U64();
      const std::string_view text = in.String(max_text_bytes);
      if (!in.ok()) break;
      if (hash == 0 || hash == pinned_) return in.Fail("corrupt checkpoint: key dictionary hash");
      if (texts_.emplace(hash, text).second) bytes_ += CostOf(text);
    }
    return in.ok();
  }

  // Keeps only the hashes in `live` (and the pinned one).
  void Collect(const std::unordered_set<uint64_t>& live) {
    std::erase_if(texts_, [&](const auto& entry) {
      if (entry.first == pinned_ || live.contains(entry.first)) return false;
      bytes_ -= CostOf(entry.second);
      return true;
    });
  }

 private:
  static uint64_t CostOf(std::string_view text) {
    // Texts up to 15 bytes live inside std::string (no allocation of their own).
    return kEntryBytes + (text.size() > 15 ? text.size() + 1 : 0);
  }

  std::unordered_map<uint64_t, std::string> texts_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  uint64_t pinned_ = 0;
};

}  // namespace rta::agg::detail
