#include "server/aggregator/dedupe_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace rta::agg {
namespace {

constexpr uint64_t kTimeMask = (uint64_t{1} << DedupeTable::kTimeBits) - 1;

uint64_t FingerprintOf(uint64_t hash) {
  const uint64_t fingerprint = hash >> (64 - DedupeTable::kFingerprintBits);
  return fingerprint == 0 ? 1 : fingerprint;
}

uint64_t Pack(uint64_t fingerprint, uint64_t time) {
  return (fingerprint << DedupeTable::kTimeBits) | (time & kTimeMask);
}

// Seconds since the word was written, from 24-bit wrapping times. A word from the "future" (the
// clock stepped back) has age 0, so a clock step never makes ids forgettable.
int64_t AgeOf(uint64_t word, uint64_t now_time) {
  const uint64_t diff = (now_time - word) & kTimeMask;
  const int64_t signed_diff =
      diff >= (uint64_t{1} << (DedupeTable::kTimeBits - 1))
          ? static_cast<int64_t>(diff) - static_cast<int64_t>(uint64_t{1} << DedupeTable::kTimeBits)
          : static_cast<int64_t>(diff);
  return std::max<int64_t>(signed_diff, 0);
}

}  // namespace

DedupeTable::DedupeTable(uint32_t capacity_log2, int64_t horizon_seconds, int64_t start_second)
    : horizon_seconds_(std::clamp<int64_t>(horizon_seconds, 0, int64_t{1} << (kTimeBits - 2))),
      start_second_(start_second) {
  capacity_log2 = std::clamp<uint32_t>(capacity_log2, 3, 34);
  const size_t words = size_t{1} << capacity_log2;
  // Anonymous memory is zero pages until touched, so a 32 MiB table costs nothing until ids
  // arrive. Aligned to 2 MiB and marked for transparent huge pages: every lookup lands on a
  // random line of the table, and with 4 KiB pages each one would also miss the TLB.
  constexpr size_t kHugePage = size_t{2} << 20;
  allocation_size_ = words * sizeof(uint64_t) + kHugePage;
  allocation_ =
      mmap(nullptr, allocation_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (allocation_ == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t address = reinterpret_cast<uintptr_t>(allocation_);
  const uintptr_t aligned = (address + kHugePage - 1) & ~uintptr_t{kHugePage - 1};
  words_ = reinterpret_cast<uint64_t*>(aligned);
#ifdef MADV_HUGEPAGE
  madvise(words_, words * sizeof(uint64_t), MADV_HUGEPAGE);  // advisory: failure is harmless
#endif
  mask_ = words - 1;
}

DedupeTable::~DedupeTable() { munmap(allocation_, allocation_size_); }

DedupeTable::Outcome DedupeTable::CheckAndInsert(uint64_t hash, int64_t now_second) {
  const uint64_t fingerprint = FingerprintOf(hash);
  const uint64_t now_time = static_cast<uint64_t>(now_second - start_second_) & kTimeMask;
  const uint64_t mine = Pack(fingerprint, now_time);
  const size_t home = SlotOf(hash);
  const size_t group = home & ~(kGroupSize - 1);
  auto slot_at = [&](size_t probe) {
    return std::atomic_ref<uint64_t>(words_[group + ((home + probe) & (kGroupSize - 1))]);
  };
  auto live = [&](uint64_t word) { return word != 0 && AgeOf(word, now_time) <= horizon_seconds_; };
  for (;;) {
    uint64_t seen[kGroupSize];
    size_t free_probe = kGroupSize;
    size_t oldest_probe = 0;
    int64_t oldest_age = -1;
    bool duplicate = false;
    for (size_t probe = 0; probe < kGroupSize; ++probe) {
      const uint64_t word = slot_at(probe).load(std::memory_order_seq_cst);
      seen[probe] = word;
      if (!live(word)) {
        if (free_probe == kGroupSize) free_probe = probe;
        continue;
      }
      if ((word >> kTimeBits) == fingerprint) {
        duplicate = true;
        break;
      }
      const int64_t age = AgeOf(word, now_time);
      if (age > oldest_age) {
        oldest_age = age;
        oldest_probe = probe;
      }
    }
    if (duplicate) return Outcome::kDuplicate;
    const bool evicting = free_probe == kGroupSize;
    const size_t target = evicting ? oldest_probe : free_probe;
    uint64_t expected = seen[target];
    if (!slot_at(target).compare_exchange_strong(expected, mine, std::memory_order_seq_cst)) {
      continue;  // someone else changed the slot: look again, it may be our own id
    }
    // A concurrent insert of the same id that claimed an earlier slot wins.
    for (size_t probe = 0; probe < target; ++probe) {
      const uint64_t word = slot_at(probe).load(std::memory_order_seq_cst);
      if (live(word) && (word >> kTimeBits) == fingerprint) {
        uint64_t claimed = mine;
        slot_at(target).compare_exchange_strong(claimed, 0, std::memory_order_seq_cst);
        return Outcome::kDuplicate;
      }
    }
    return evicting ? Outcome::kInsertedEvicted : Outcome::kInserted;
  }
}

}  // namespace rta::agg
