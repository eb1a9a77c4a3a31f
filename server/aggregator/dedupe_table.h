#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace rta::agg {

// Remembers the event_ids accepted in the last `horizon_seconds`, across every thread, in a fixed
// amount of memory, without locks.
//
// Layout: 2^capacity_log2 64-bit words (8 bytes per id; the default 2^22 is 32 MiB, mapped lazily
// and on transparent huge pages where available), in groups of 8 words aligned to one cache
// line. A word packs a 40-bit fingerprint of the id's hash (its top
// 40 bits; never 0, so 0 means empty) and the 24-bit second, relative to the table's creation, at
// which the id was accepted. An id probes only its home group, starting at its home slot and
// wrapping inside the group (a bounded probe of 8 slots, one cache miss; Prefetch() hides it).
//
// CheckAndInsert(): a live word with the same fingerprint means duplicate. Otherwise the id claims
// the first free slot in probe order (empty, or expired: older than the horizon) with a CAS; when
// all 8 ids of the group are live, it evicts the oldest (counted as an eviction: a retry of that
// evicted id would be counted again). A failed CAS re-runs the whole check. After claiming, the
// id re-reads the slots before its own: if a concurrent insert of the same id claimed one of them
// first, this one backs off and reports a duplicate, so two threads racing with one id count it
// once (the remaining window, which needs a slot expiring between the two threads' clock reads
// in the very same second, is far below the false-positive rate).
//
// False positives: a new id is reported as a duplicate only if one of the at most 8 live ids of
// its group has the same 40-bit fingerprint: probability <= 8 / 2^40 = 7.3e-12 per event (about
// one wrong duplicate per 10^11 events). The stored second wraps after 2^24 s (194 days); a word
// that old is long expired unless untouched for exactly a multiple of that span, which only
// matters together with a fingerprint match.
//
// A duplicate does not refresh the stored second: an id counts again `horizon_seconds` after it
// was first accepted (a duplicate within [0, horizon] seconds of acceptance, by whole seconds).
//
// Thread-safe; all operations are lock-free and allocation-free.
class DedupeTable {
 public:
  enum class Outcome {
    kInserted,         // new id, remembered
    kInsertedEvicted,  // new id, remembered by evicting the oldest live id of its group
    kDuplicate,        // seen within the horizon
  };

  DedupeTable(uint32_t capacity_log2, int64_t horizon_seconds, int64_t start_second);
  ~DedupeTable();
  DedupeTable(const DedupeTable&) = delete;
  DedupeTable& operator=(const DedupeTable&) = delete;

  void Prefetch(uint64_t hash) const { __builtin_prefetch(&words_[SlotOf(hash)], 1, 3); }

  Outcome CheckAndInsert(uint64_t hash, int64_t now_second);

  size_t capacity() const { return mask_ + 1; }

  static constexpr int kFingerprintBits = 40;
  static constexpr int kTimeBits = 24;
  static constexpr size_t kGroupSize = 8;

 private:
  size_t SlotOf(uint64_t hash) const { return static_cast<size_t>(hash) & mask_; }

  void* allocation_ = nullptr;
  size_t allocation_size_ = 0;
  uint64_t* words_ = nullptr;  // accessed only through std::atomic_ref
  size_t mask_ = 0;
  int64_t horizon_seconds_;
  int64_t start_second_;
};

}  // namespace rta::agg
