#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

// A fast 64-bit string hash with full avalanche, in the style of wyhash (public domain, Wang Yi):
// 128-bit multiply-and-fold rounds over 16-byte blocks. HyperLogLog takes its register index and
// rank straight from these bits, and the hash tables their slots, so every output bit must
// depend on every input bit; FNV-1a without a finalizer would not do. It is not a keyed PRF: the
// aggregator passes per-process random seeds (aggregator.cc) so that clients cannot precompute
// colliding values, and event ids, which decide what counts, use SipHash (dedupe_table.h). The
// fixed seeds below are for tests and benchmarks that need reproducible hashes.
namespace rta::agg::detail {

inline void Multiply128(uint64_t a, uint64_t b, uint64_t* lo, uint64_t* hi) {
  __extension__ typedef unsigned __int128 U128;
  const U128 product = static_cast<U128>(a) * b;
  *lo = static_cast<uint64_t>(product);
  *hi = static_cast<uint64_t>(product >> 64);
}

inline uint64_t MultiplyFold(uint64_t a, uint64_t b) {
  uint64_t lo;
  uint64_t hi;
  Multiply128(a, b, &lo, &hi);
  return lo ^ hi;
}

inline uint64_t Read64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline uint64_t Read32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline constexpr uint64_t kHashSecret0 = 0xa0761d6478bd642full;
inline constexpr uint64_t kHashSecret1 = 0xe7037ed1a0b428dbull;
inline constexpr uint64_t kHashSecret2 = 0x8ebc6af09c88c6e3ull;
inline constexpr uint64_t kHashSecret3 = 0x589965cc75374cc3ull;

// Distinct seeds keep the hashes of different uses independent (an event_id that equals a
// visitor_id must not land on correlated bits).
inline constexpr uint64_t kSeedEventId = 0x243f6a8885a308d3ull;
inline constexpr uint64_t kSeedVisitor = 0x13198a2e03707344ull;
inline constexpr uint64_t kSeedSession = 0xa4093822299f31d0ull;
inline constexpr uint64_t kSeedKey = 0x082efa98ec4e6c89ull;

inline uint64_t HashBytes(std::string_view bytes, uint64_t seed) {
  const char* p = bytes.data();
  const size_t n = bytes.size();
  seed ^= MultiplyFold(seed ^ kHashSecret0, kHashSecret1);
  uint64_t a;
  uint64_t b;
  if (n <= 16) {
    if (n >= 4) {
      const size_t shift = (n >> 3) << 2;
      a = (Read32(p) << 32) | Read32(p + shift);
      b = (Read32(p + n - 4) << 32) | Read32(p + n - 4 - shift);
    } else if (n > 0) {
      a = (static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16) |
          (static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8) |
          static_cast<uint8_t>(p[n - 1]);
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = n;
    if (i > 48) {
      uint64_t seed1 = seed;
      uint64_t seed2 = seed;
      do {
        seed = MultiplyFold(Read64(p) ^ kHashSecret1, Read64(p + 8) ^ seed);
        seed1 = MultiplyFold(Read64(p + 16) ^ kHashSecret2, Read64(p + 24) ^ seed1);
        seed2 = MultiplyFold(Read64(p + 32) ^ kHashSecret3, Read64(p + 40) ^ seed2);
        p += 48;
        i -= 48;
      } while (i > 48);
      seed ^= seed1 ^ seed2;
    }
    while (i > 16) {
      seed = MultiplyFold(Read64(p) ^ kHashSecret1, Read64(p + 8) ^ seed);
      i -= 16;
      p += 16;
    }
    a = Read64(p + i - 16);
    b = Read64(p + i - 8);
  }
  Multiply128(a ^ kHashSecret1, b ^ seed, &a, &b);
  return MultiplyFold(a ^ kHashSecret0 ^ n, b ^ kHashSecret1);
}

// Keys of our hash tables use 0 as "empty"; a real hash of 0 (probability 2^-64) becomes 1.
inline uint64_t NonZero(uint64_t hash) { return hash == 0 ? 1 : hash; }

}  // namespace rta::agg::detail
