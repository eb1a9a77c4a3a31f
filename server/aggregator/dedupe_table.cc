#include "server/aggregator/dedupe_table.h"

#include <sys/mman.h>

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>

namespace rta::agg {

IdHasher::IdHasher() {
  // sodium_init() is idempotent and thread-safe; it seeds randombytes from the kernel.
  if (sodium_init() < 0) throw std::runtime_error("libsodium: sodium_init failed");
  randombytes_buf(key_, sizeof key_);
}

IdHasher IdHasher::WithKeyForTest(const unsigned char (&key)[16]) {
  IdHasher hasher{FixedKey{}};
  std::memcpy(hasher.key_, key, sizeof key);
  return hasher;
}

IdHash IdHasher::Hash(std::string_view id) const {
  static_assert(crypto_shorthash_siphashx24_KEYBYTES == sizeof key_);
  unsigned char out[crypto_shorthash_siphashx24_BYTES];
  crypto_shorthash_siphashx24(out, reinterpret_cast<const unsigned char*>(id.data()), id.size(),
                              key_);
  IdHash hash;
  std::memcpy(&hash.fingerprint_bits, out, 8);
  std::memcpy(&hash.bucket_bits, out + 8, 8);
  return hash;
}

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
  capacity_log2 = std::clamp<uint32_t>(capacity_log2, 5, 34);  // at least two buckets
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
  bucket_mask_ = words / kBucketSize - 1;
}

DedupeTable::~DedupeTable() { munmap(allocation_, allocation_size_); }

DedupeTable::Outcome DedupeTable::CheckAndInsert(const IdHash& hash, int64_t now_second) {
  const uint64_t fingerprint = FingerprintOf(hash.fingerprint_bits);
  const uint64_t now_time = static_cast<uint64_t>(now_second - start_second_) & kTimeMask;
  const uint64_t mine = Pack(fingerprint, now_time);
  uint64_t* const buckets[2] = {BucketAt(FirstBucket(hash)), BucketAt(SecondBucket(hash))};
  // Position p in 0..31: bucket p / 16, slot p % 16. This order decides who wins a race.
  constexpr size_t kPositions = 2 * kBucketSize;
  auto slot_at = [&](size_t position) {
    return std::atomic_ref<uint64_t>(buckets[position / kBucketSize][position % kBucketSize]);
  };
  auto live = [&](uint64_t word) { return word != 0 && AgeOf(word, now_time) <= horizon_seconds_; };
  for (;;) {
    uint64_t seen[kPositions];
    size_t free_position[2] = {kBucketSize, kBucketSize};  // first free slot of each bucket
    size_t live_count[2] = {0, 0};
    size_t oldest_position = 0;
    int64_t oldest_age = -1;
    for (size_t position = 0; position < kPositions; ++position) {
      const uint64_t word = slot_at(position).load(std::memory_order_seq_cst);
      seen[position] = word;
      const size_t b = position / kBucketSize;
      if (!live(word)) {
        if (free_position[b] == kBucketSize) free_position[b] = position % kBucketSize;
        continue;
      }
      if ((word >> kTimeBits) == fingerprint) return Outcome::kDuplicate;
      ++live_count[b];
      const int64_t age = AgeOf(word, now_time);
      if (age > oldest_age) {
        oldest_age = age;
        oldest_position = position;
      }
    }
    size_t target;
    bool evicting = false;
    if (free_position[0] < kBucketSize &&
        (live_count[0] <= live_count[1] || free_position[1] == kBucketSize)) {
      target = free_position[0];
    } else if (free_position[1] < kBucketSize) {
      target = kBucketSize + free_position[1];
    } else {
      target = oldest_position;  // both buckets full of live ids
      evicting = true;
    }
    uint64_t expected = seen[target];
    if (!slot_at(target).compare_exchange_strong(expected, mine, std::memory_order_seq_cst)) {
      continue;  // someone else changed the slot: look again, it may be our own id
    }
    // A concurrent insert of the same id that claimed an earlier position wins.
    for (size_t position = 0; position < target; ++position) {
      const uint64_t word = slot_at(position).load(std::memory_order_seq_cst);
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
