#include "server/aggregator/dedupe_table.h"

#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>

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

void IdHasher::CopyKey(unsigned char (&out)[16]) const { std::memcpy(out, key_, sizeof key_); }

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
// Between the time and the fingerprint: set while the insert that wrote the word has not yet
// decided whether its id counts (see CheckAndInsert).
constexpr int kPendingShift = DedupeTable::kTimeBits;
constexpr uint64_t kPendingBit = uint64_t{1} << kPendingShift;
constexpr int kTagShift = kPendingShift + 1;  // where the fingerprint starts
static_assert(kTagShift + DedupeTable::kFingerprintBits == 64);

uint64_t FingerprintOf(uint64_t hash) {
  const uint64_t fingerprint = hash >> (64 - DedupeTable::kFingerprintBits);
  return fingerprint == 0 ? 1 : fingerprint;
}

uint64_t Pack(uint64_t fingerprint, uint64_t time) {
  return (fingerprint << kTagShift) | (time & kTimeMask);
}

bool IsPending(uint64_t word) { return (word & kPendingBit) != 0; }

// One step of waiting for another thread to finish something short (a pending claim to settle,
// a bucket's copy): a pause while the wait is young, then a yield, in case that thread was
// preempted.
void Backoff(int spins) {
  if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
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

// Which of a pair of buckets' 32 words are live, and which carry a given fingerprint (bit p for
// position p). Live: written (a fingerprint is never 0, so a written word has a non-zero tag)
// and either pending or not older than the horizon; a word from the "future" (the clock stepped
// back) is live too. A pending word is live whatever its age: only its writer may change it.
// Shifting ages by half the time range makes "future or within the horizon" one comparison:
// future ages become [0, 2^23), ages 0..horizon become [2^23, 2^23 + horizon], so the caller
// passes shifted_now = now + 2^23 and live_limit = 2^23 + horizon.
struct ScanResult {
  uint32_t live = 0;
  uint32_t match = 0;
};
constexpr size_t kPositions = 2 * DedupeTable::kBucketSize;

bool IsLive(uint64_t word, uint64_t shifted_now, uint64_t live_limit) {
  const bool written = (word >> kTagShift) != 0;
  const bool recent = ((shifted_now - word) & kTimeMask) <= live_limit;
  return written & (recent | IsPending(word));
}

ScanResult ScanPortable(const uint64_t* seen, uint64_t fingerprint, uint64_t shifted_now,
                        uint64_t live_limit) {
  ScanResult result;
  for (size_t position = 0; position < kPositions; ++position) {
    const uint64_t word = seen[position];
    result.live |= static_cast<uint32_t>(IsLive(word, shifted_now, live_limit)) << position;
    result.match |= static_cast<uint32_t>((word >> kTagShift) == fingerprint) << position;
  }
  return result;
}

#if defined(__SSE2__)
// The same, two words at a time (SSE2 is part of x86-64): a third of the instructions, and this
// runs on every insert. Ages use the words' low 32-bit lanes; fingerprints their 64-bit shift.
ScanResult ScanSse2(const uint64_t* seen, uint64_t fingerprint, uint64_t shifted_now,
                    uint64_t live_limit) {
  const __m128i want = _mm_set1_epi64x(static_cast<long long>(fingerprint));
  const __m128i zero = _mm_setzero_si128();
  const __m128i now = _mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(shifted_now)));
  const __m128i time_mask =
      _mm_set_epi32(0, static_cast<int>(kTimeMask), 0, static_cast<int>(kTimeMask));
  const __m128i limit = _mm_set1_epi32(static_cast<int>(live_limit));
  ScanResult result;
  for (size_t position = 0; position < kPositions; position += 2) {
    const __m128i words = _mm_loadu_si128(reinterpret_cast<const __m128i*>(seen + position));
    const __m128i tags = _mm_srli_epi64(words, kTagShift);
    // 64-bit equality from 32-bit lanes: a word's two lanes must both be equal.
    __m128i equal = _mm_cmpeq_epi32(tags, want);
    equal = _mm_and_si128(equal, _mm_shuffle_epi32(equal, _MM_SHUFFLE(2, 3, 0, 1)));
    __m128i empty = _mm_cmpeq_epi32(tags, zero);
    empty = _mm_and_si128(empty, _mm_shuffle_epi32(empty, _MM_SHUFFLE(2, 3, 0, 1)));
    const __m128i ages = _mm_and_si128(_mm_sub_epi32(now, words), time_mask);
    // Ages and the limit are below 2^25, so the signed comparison is exact.
    __m128i expired = _mm_cmpgt_epi32(ages, limit);
    expired = _mm_shuffle_epi32(expired, _MM_SHUFFLE(2, 2, 0, 0));  // into each word's sign bit
    // The pending bit into each word's sign bit: a pending word is never expired.
    const __m128i pending = _mm_slli_epi64(words, 63 - kPendingShift);
    expired = _mm_andnot_si128(pending, expired);
    const auto dead =
        static_cast<uint32_t>(_mm_movemask_pd(_mm_castsi128_pd(_mm_or_si128(empty, expired))));
    const auto matched = static_cast<uint32_t>(_mm_movemask_pd(_mm_castsi128_pd(equal)));
    result.live |= (~dead & 3u) << position;
    result.match |= matched << position;
  }
  return result;
}
#endif

ScanResult Scan(const uint64_t* seen, uint64_t fingerprint, uint64_t shifted_now,
                uint64_t live_limit) {
#if defined(__SSE2__)
  return ScanSse2(seen, fingerprint, shifted_now, live_limit);
#else
  return ScanPortable(seen, fingerprint, shifted_now, live_limit);
#endif
}

}  // namespace

size_t DedupeTable::ScanMismatchesForTest(uint64_t seed, size_t rounds) {
  size_t mismatches = 0;
  uint64_t state = seed | 1;
  auto next = [&state] {  // xorshift64: cheap, and enough to vary every field
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (size_t round = 0; round < rounds; ++round) {
    const uint64_t now_time = next() & kTimeMask;
    const uint64_t horizon = next() % (uint64_t{1} << (kTimeBits - 2));
    const uint64_t fingerprint = FingerprintOf(next());
    uint64_t seen[kPositions];
    for (uint64_t& word : seen) {
      switch (next() % 6) {
        case 0:
          word = 0;
          break;
        case 1:  // this fingerprint, any age
          word = Pack(fingerprint, next());
          break;
        case 2:  // right at the horizon, either side
          word = Pack(FingerprintOf(next()), now_time - horizon - (next() % 2));
          break;
        case 3:  // a little in the future
          word = Pack(FingerprintOf(next()), now_time + (next() % 100));
          break;
        case 4:  // pending, this fingerprint or another, any age
          word = Pack(next() % 2 ? fingerprint : FingerprintOf(next()), next()) | kPendingBit;
          break;
        default:
          word = next() | (uint64_t{1} << 63);
      }
    }
    const uint64_t shifted_now = now_time + (uint64_t{1} << (kTimeBits - 1));
    const uint64_t limit = (uint64_t{1} << (kTimeBits - 1)) + horizon;
    const ScanResult fast = Scan(seen, fingerprint, shifted_now, limit);
    const ScanResult portable = ScanPortable(seen, fingerprint, shifted_now, limit);
    // And against the plain definition of "live".
    uint32_t expected_live = 0;
    uint32_t expected_match = 0;
    for (size_t p = 0; p < kPositions; ++p) {
      const bool live =
          (seen[p] >> kTagShift) != 0 &&
          (IsPending(seen[p]) || AgeOf(seen[p], now_time) <= static_cast<int64_t>(horizon));
      expected_live |= static_cast<uint32_t>(live) << p;
      expected_match |= static_cast<uint32_t>(seen[p] >> kTagShift == fingerprint) << p;
    }
    mismatches += fast.live != portable.live || fast.match != portable.match ||
                  portable.live != expected_live || portable.match != expected_match;
  }
  return mismatches;
}

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

void DedupeTable::BeginCopy(uint64_t* out) {
  const size_t buckets = bucket_mask_ + 1;
  if (!copy_state_) copy_state_ = std::make_unique<std::atomic<uint8_t>[]>(buckets);
  for (size_t i = 0; i < buckets; ++i) copy_state_[i].store(0, std::memory_order_relaxed);
  copy_out_ = out;
  // Inserts start again only after the caller's freeze ends (a seq_cst store they synchronize
  // with), so every later insert sees the flag and the reset states.
  copying_.store(true, std::memory_order_release);
}

void DedupeTable::CopyBucketOnce(size_t bucket) {
  std::atomic<uint8_t>& state = copy_state_[bucket];
  uint8_t seen = state.load(std::memory_order_acquire);
  if (seen == 2) return;
  if (seen == 0 && state.compare_exchange_strong(seen, 1, std::memory_order_acquire)) {
    uint64_t* const from = BucketAt(bucket);
    uint64_t* const to = copy_out_ + bucket * kBucketSize;
    for (size_t i = 0; i < kBucketSize; ++i) {
      to[i] = std::atomic_ref<uint64_t>(from[i]).load(std::memory_order_relaxed);
    }
    state.store(2, std::memory_order_release);
    return;
  }
  for (int spins = 0; state.load(std::memory_order_acquire) != 2; ++spins) Backoff(spins);
}

void DedupeTable::FinishCopy() {
  const size_t buckets = bucket_mask_ + 1;
  for (size_t i = 0; i < buckets; ++i) CopyBucketOnce(i);
  copying_.store(false, std::memory_order_relaxed);
}

bool DedupeTable::LoadBuckets(std::string_view bitmap, std::string_view words) {
  const size_t buckets = bucket_mask_ + 1;
  constexpr size_t kBucketBytes = kBucketSize * sizeof(uint64_t);
  if (bitmap.size() != (buckets + 7) / 8) return false;
  size_t offset = 0;
  for (size_t bucket = 0; bucket < buckets; ++bucket) {
    if (!((static_cast<uint8_t>(bitmap[bucket / 8]) >> (bucket % 8)) & 1u)) continue;
    if (words.size() - offset < kBucketBytes) return false;
    uint64_t* const to = BucketAt(bucket);
    std::memcpy(to, words.data() + offset, kBucketBytes);
    // A copy holds no pending word (it is cut while no insert runs); clearing the bit anyway
    // means no word can stay pending forever, whatever the bytes.
    for (size_t i = 0; i < kBucketSize; ++i) to[i] &= ~kPendingBit;
    offset += kBucketBytes;
  }
  return offset == words.size();
}

DedupeTable::Outcome DedupeTable::CheckAndInsert(const IdHash& hash, int64_t now_second) {
  const uint64_t fingerprint = FingerprintOf(hash.fingerprint_bits);
  const uint64_t now_time = static_cast<uint64_t>(now_second - start_second_) & kTimeMask;
  const uint64_t settled = Pack(fingerprint, now_time);
  const uint64_t pending = settled | kPendingBit;
  if (copying_.load(std::memory_order_acquire)) [[unlikely]] {
    CopyBucketOnce(FirstBucket(hash));
    CopyBucketOnce(SecondBucket(hash));
  }
  uint64_t* const buckets[2] = {BucketAt(FirstBucket(hash)), BucketAt(SecondBucket(hash))};
  // Position p in 0..31: bucket p / 16, slot p % 16.
  auto word_at = [&](size_t position) {
    return &buckets[position / kBucketSize][position % kBucketSize];
  };
  auto slot_at = [&](size_t position) { return std::atomic_ref<uint64_t>(*word_at(position)); };
  constexpr uint64_t kHalf = uint64_t{1} << (kTimeBits - 1);
  const uint64_t live_limit = kHalf + static_cast<uint64_t>(horizon_seconds_);
  const uint64_t shifted_now = now_time + kHalf;
  for (;;) {
    alignas(16) uint64_t seen[kPositions];
    for (size_t position = 0; position < kPositions; ++position) {
      seen[position] = slot_at(position).load(std::memory_order_seq_cst);
    }
    const ScanResult scan = Scan(seen, fingerprint, shifted_now, live_limit);
    const uint32_t live_mask = scan.live;
    // A pending claim of this id counts as seen: one of its claimants will count it.
    const bool duplicate = (scan.live & scan.match) != 0;
    if (duplicate) return Outcome::kDuplicate;
    const uint32_t free_first = ~live_mask & 0xffffu;
    const uint32_t free_second = ~live_mask >> kBucketSize;
    size_t target;
    bool evicting = false;
    // The bucket with fewer live ids (more free slots); ties go to the first.
    if (free_first != 0 &&
        (free_second == 0 || std::popcount(free_first) >= std::popcount(free_second))) {
      target = static_cast<size_t>(std::countr_zero(free_first));
    } else if (free_second != 0) {
      target = kBucketSize + static_cast<size_t>(std::countr_zero(free_second));
    } else {
      // Both buckets full of live ids (only beyond the stated capacity): evict the oldest
      // settled one. A pending word belongs to an insert still deciding; it is never taken.
      evicting = true;
      target = kPositions;
      int64_t oldest_age = -1;
      for (size_t position = 0; position < kPositions; ++position) {
        if (IsPending(seen[position])) continue;
        const int64_t age = AgeOf(seen[position], now_time);
        if (age > oldest_age) {
          oldest_age = age;
          target = position;
        }
      }
      if (target == kPositions) {  // all 32 pending: wait for one to settle
        Backoff(0);
        continue;
      }
    }
    uint64_t expected = seen[target];
    if (!slot_at(target).compare_exchange_strong(expected, pending, std::memory_order_seq_cst)) {
      continue;  // someone else changed the slot: look again, it may be our own id
    }
    // Settle the claim against concurrent claims of the same id. Claims are ordered by address
    // (the same order for every id, so waits never form a cycle): a lower claim, pending or
    // settled, wins; a higher settled claim wins; a higher pending claim is waited for (it backs
    // off if it sees this one; otherwise it settles and wins). Why exactly one claimant counts:
    // all accesses are seq_cst, so of two claims at x < y, if Y settled then Y's read of x
    // preceded X's CAS, so Y's CAS did too, and X's later read of y sees Y's claim (pending, then
    // settled) and X backs off; and a claimant only backs off for a claim that can still win
    // (every backing-off chain ends at a lowest claim or a settled one).
    // Every word is read again after the claim. The snapshot above held no live word with this
    // fingerprint, so when none differs from it there is no rival (the common case, and the
    // cheap one: 12 ns an insert in a micro-benchmark); otherwise each is read and judged.
    const uint64_t* const own = word_at(target);
    seen[target] = pending;
    uint64_t differences = 0;
    for (size_t position = 0; position < kPositions; ++position) {
      differences |= slot_at(position).load(std::memory_order_seq_cst) ^ seen[position];
    }
    for (size_t position = 0; differences != 0 && position < kPositions; ++position) {
      if (position == target) continue;
      uint64_t word = slot_at(position).load(std::memory_order_seq_cst);
      for (int spins = 0;; ++spins) {
        if ((word >> kTagShift) != fingerprint || !IsLive(word, shifted_now, live_limit)) break;
        if (word_at(position) < own || !IsPending(word)) {
          slot_at(target).store(0, std::memory_order_release);  // withdraw: only we change it
          return Outcome::kDuplicate;
        }
        Backoff(spins);  // a higher claim still pending: wait for it to settle
        word = slot_at(position).load(std::memory_order_seq_cst);
      }
    }
    // Release: a waiting rival's load sees the claim settled or withdrawn, and either is final.
    slot_at(target).store(settled, std::memory_order_release);
    return evicting ? Outcome::kInsertedEvicted : Outcome::kInserted;
  }
}

}  // namespace rta::agg
