#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace rta::agg {

// The 128-bit keyed hash of one event_id: everything the dedupe table needs (two bucket choices
// and a fingerprint) from independent bits.
struct IdHash {
  uint64_t fingerprint_bits = 0;  // the fingerprint is the top kFingerprintBits
  uint64_t bucket_bits = 0;       // low 32 bits: first bucket, high 32 bits: second bucket
};

// Hashes event ids with SipHash-2-4 (libsodium's crypto_shorthash_siphashx24, the 128-bit output
// variant) under a key drawn from randombytes_buf when the hasher is made, so that ids chosen by
// a client cannot be aimed at one bucket of the table (the key is never exposed; a new process
// has a new key). Thread-safe after construction (Hash() only reads the key).
class IdHasher {
 public:
  IdHasher();  // throws std::runtime_error if libsodium cannot initialise (start-up only)
  // A hasher with a fixed key, for tests that need reproducible bucket placement.
  static IdHasher WithKeyForTest(const unsigned char (&key)[16]);
  // The same, for Aggregator::Restore (the key comes from a checkpoint), and the key itself for
  // the checkpoint. Never logged or exposed otherwise.
  static IdHasher WithKey(const unsigned char (&key)[16]) { return WithKeyForTest(key); }
  void CopyKey(unsigned char (&out)[16]) const;
  IdHash Hash(std::string_view id) const;

 private:
  struct FixedKey {};
  explicit IdHasher(FixedKey) {}
  unsigned char key_[16] = {};
};

// Remembers the event_ids accepted in the last `horizon_seconds`, across every thread, in a fixed
// amount of memory, without locks or allocation.
//
// Layout: 2^capacity_log2 64-bit words (8 bytes per slot; the default 2^22 is 32 MiB, mapped
// lazily and on transparent huge pages where available), in buckets of 16 words (128 bytes, two
// adjacent cache lines). A word packs a 39-bit fingerprint (never 0, so 0 means empty), a pending
// bit (the claim of an insert still in progress) and the 24-bit second, relative to the table's
// creation, at which the id was accepted.
//
// Two choices: every id has two buckets (independent hash bits). CheckAndInsert() reads both
// (32 words; Prefetch() starts the four line fetches early). A live word with the id's
// fingerprint in either bucket, settled or pending, means duplicate. Otherwise the id claims the
// first free slot (empty, or expired: older than the horizon) of the bucket with fewer live ids
// (ties: the first), with a CAS. Only when both buckets hold 16 live ids each does it evict the
// oldest settled one of the 32: an early eviction (Outcome::kInsertedEvicted), after which a
// retry of the evicted id would count again.
//
// Capacity (capacity_ids() = 3/4 of the slots; 3,145,728 ids at the default 2^22): the number of
// ids accepted within one horizon the table is built to hold without early evictions. With two
// choices of 16-slot buckets the fullest bucket stays below 16 live ids w.h.p. up to that load:
// a simulation (4 Mi slots, a sliding window of live ids, four full turnovers) saw no early
// eviction at 75% load and about 3 per 100,000 inserts at 80%; one 8-slot group per id (the
// earlier design) overflowed from about 9% load on. So early evictions mean that more distinct
// ids arrived within one horizon than the stated capacity: raise dedupe_capacity_log2.
//
// Races: a failed CAS re-runs the whole check. The claim is written pending; the insert then
// re-reads the other 31 words and settles it against any concurrent claim of the same id (which
// can sit in another slot when a third insert changed the buckets between the two racers'
// reads). Claims are ordered by address: a lower claim or a settled higher one wins, and this one
// is withdrawn (kDuplicate); a pending higher one is waited for. Exactly one racer counts (the
// proof is at the settle loop). A pending word is live and never evicted or reused, so only its
// writer changes it; the wait is a few hundred nanoseconds unless the other racer is preempted.
//
// False positives: a new id is reported as a duplicate only if one of the at most 32 live ids of
// its two buckets has the same 39-bit fingerprint: probability <= 32 / 2^39 = 5.8e-11 per event.
// The stored second wraps after 2^24 s (194 days); a word that old is long expired unless
// untouched for exactly a multiple of that span, which only matters together with a fingerprint
// match.
//
// A duplicate does not refresh the stored second: an id counts again `horizon_seconds` after it
// was first accepted (a duplicate within [0, horizon] seconds of acceptance, by whole seconds).
//
// Thread-safe and allocation-free. Lock-free except where two inserts of one id race: then the
// lower claimant may wait for the higher one to settle.
class DedupeTable {
 public:
  enum class Outcome {
    kInserted,         // new id, remembered
    kInsertedEvicted,  // new id, remembered by evicting a live id (both buckets full)
    kDuplicate,        // seen within the horizon
  };

  DedupeTable(uint32_t capacity_log2, int64_t horizon_seconds, int64_t start_second);
  ~DedupeTable();
  DedupeTable(const DedupeTable&) = delete;
  DedupeTable& operator=(const DedupeTable&) = delete;

  void Prefetch(const IdHash& hash) const {
    const uint64_t* first = BucketAt(FirstBucket(hash));
    const uint64_t* second = BucketAt(SecondBucket(hash));
    __builtin_prefetch(first, 1, 3);
    __builtin_prefetch(first + 8, 1, 3);
    __builtin_prefetch(second, 1, 3);
    __builtin_prefetch(second + 8, 1, 3);
  }

  Outcome CheckAndInsert(const IdHash& hash, int64_t now_second);

  size_t slots() const { return (bucket_mask_ + 1) * kBucketSize; }
  // Ids per horizon the table holds without early evictions (see the class comment).
  size_t capacity_ids() const { return CapacityIdsFor(slots()); }
  static constexpr size_t CapacityIdsFor(size_t slots) { return slots / 4 * 3; }
  int64_t horizon_seconds() const { return horizon_seconds_; }

  // Checkpoint support: a copy of the table as it was at one instant, taken without stopping
  // inserts for the 32 MiB copy. BeginCopy() (called while no CheckAndInsert() runs: inside
  // Aggregator::Checkpoint's freeze) only marks every bucket "not copied" and raises a flag;
  // FinishCopy() (same thread, after inserts resumed) copies the buckets one by one. Meanwhile
  // an insert that sees the flag first copies each of its two buckets that is not copied yet
  // (copy-on-write, 128 bytes), so no bucket is changed before its pre-cut words are in `out`.
  // Each bucket has a state (0 not copied, 1 being copied, 2 copied) claimed by CAS; whoever
  // claims it copies it (atomic loads) and publishes 2 (release); the other side waits for 2
  // (acquire), so FinishCopy() sees every bucket's words. Costs inserts one load of the flag.
  // `out` must hold words() words and stay untouched until FinishCopy() returns.
  size_t words() const { return slots(); }
  int64_t start_second() const { return start_second_; }
  void BeginCopy(uint64_t* out);
  void FinishCopy();
  // A restore, before any insert: `bitmap` has one bit per bucket (bit b % 8 of byte b / 8) and
  // `words` the kBucketSize words of each set bucket in order; the other buckets stay empty (and
  // unmapped). False when the sizes do not match.
  // Pending bits are cleared on load. Checkpoints written with 40-bit fingerprints (before the
  // pending bit) load as well: their top 39 bits are the fingerprint the hash gives now.
  bool LoadBuckets(std::string_view bitmap, std::string_view words);

  // Compares the vectorized scan of a bucket pair with the portable one and with the plain
  // definition of a live word, on `rounds` random pairs; returns how many disagreed.
  static size_t ScanMismatchesForTest(uint64_t seed, size_t rounds);

  static constexpr int kFingerprintBits = 39;
  static constexpr int kTimeBits = 24;
  static constexpr size_t kBucketSize = 16;

 private:
  size_t FirstBucket(const IdHash& hash) const {
    return static_cast<size_t>(hash.bucket_bits & 0xffffffffu) & bucket_mask_;
  }
  size_t SecondBucket(const IdHash& hash) const {
    const size_t second = static_cast<size_t>(hash.bucket_bits >> 32) & bucket_mask_;
    return second == FirstBucket(hash) ? second ^ 1 : second;  // always two distinct buckets
  }
  uint64_t* BucketAt(size_t bucket) const { return words_ + bucket * kBucketSize; }
  void CopyBucketOnce(size_t bucket);

  void* allocation_ = nullptr;
  size_t allocation_size_ = 0;
  uint64_t* words_ = nullptr;  // accessed only through std::atomic_ref
  size_t bucket_mask_ = 0;
  int64_t horizon_seconds_;
  int64_t start_second_;
  std::atomic<bool> copying_{false};  // between BeginCopy() and the end of FinishCopy()
  uint64_t* copy_out_ = nullptr;
  std::unique_ptr<std::atomic<uint8_t>[]> copy_state_;  // per bucket: 0, 1 (copying), 2 (done)
};

}  // namespace rta::agg
