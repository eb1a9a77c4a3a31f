#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

#include "server/aggregator/state_codec.h"

namespace rta::agg {

// Ertl's improved raw estimator for a HyperLogLog of 2^`precision` registers, from the histogram
// of its register values: `histogram[r]` registers hold rank r, for r in 0..64 - precision + 1.
// 0 when every register is empty. Shared by the live windows' sketch below and the rollup cells'
// sketches of other precisions (server/storage/visitor_sketch.h).
double EstimateFromRankHistogram(std::span<const uint32_t> histogram, int precision);
// Adds each register's rank to `histogram` (which must have room for the highest rank). The
// register count must be a multiple of 4.
void CountRanks(std::span<const uint8_t> registers, std::span<uint32_t> histogram);

// The rank a hash gives its register in a sketch of 2^`precision` registers: the leading zeros
// of the bits after the register index, plus one (64 - precision + 1 when they are all zero).
// Shared with the rollup cells' sketches, whose folding relies on the same reading of a hash.
inline uint8_t HyperLogLogRank(uint64_t hash, int precision) {
  const uint64_t rest = hash << precision;
  return rest == 0 ? static_cast<uint8_t>(64 - precision + 1)
                   : static_cast<uint8_t>(std::countl_zero(rest) + 1);
}

// A HyperLogLog distinct-count sketch with precision 14: 16384 one-byte registers (16 KiB),
// standard error 1.04 / sqrt(16384) = 0.81%.
//
// Add() takes a 64-bit hash whose bits are uniformly mixed (detail::HashBytes): the top 14 bits
// pick the register, the leading zeros of the other 50 bits give the rank. Merge() is the
// register-wise maximum, so a window's sketch is the merge of its buckets' sketches and a visitor
// seen in two buckets counts once. Estimate() uses Ertl's improved raw estimator ("New
// cardinality estimation algorithms for HyperLogLog sketches", 2017), which is unbiased from 0
// to far beyond 10^9 without empirical bias tables or a linear-counting switch-over.
//
// Not thread-safe; the object is large, so it usually lives behind a unique_ptr.
class HyperLogLog {
 public:
  static constexpr int kPrecision = 14;
  static constexpr size_t kRegisters = size_t{1} << kPrecision;
  static constexpr int kMaxRank = 64 - kPrecision + 1;  // 51: all 50 rank bits zero

  HyperLogLog() { Clear(); }

  void Add(uint64_t hash) {
    const size_t index = static_cast<size_t>(hash >> (64 - kPrecision));
    const uint8_t rank = HyperLogLogRank(hash, kPrecision);
    if (rank > registers_[index]) registers_[index] = rank;
  }

  // Register-wise maximum: the sketch of the union of both sets.
  void Merge(const HyperLogLog& other);

  // Estimated number of distinct hashes added; 0 for an empty sketch.
  double Estimate() const;

  void Clear() { registers_.fill(0); }
  bool IsEmpty() const;

  uint8_t Register(size_t index) const { return registers_[index]; }
  // Sets register `index` to `rank` if that is higher (a sparse copy read back: rollup cells).
  // `rank` must be at most kMaxRank.
  void RaiseRegister(size_t index, uint8_t rank) {
    if (rank > registers_[index]) registers_[index] = rank;
  }

  // Checkpoint format (state_codec.h): the registers as they are. Load() fails (leaving the
  // sketch unspecified) on a register above kMaxRank.
  void Save(detail::StateWriter& out) const { out.Raw(registers_.data(), registers_.size()); }
  bool Load(detail::StateReader& in);

 private:
  std::array<uint8_t, kRegisters> registers_;
};

}  // namespace rta::agg
