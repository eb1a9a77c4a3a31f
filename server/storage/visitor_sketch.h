#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/aggregator/hyperloglog.h"

namespace rta::storage {

// The unique visitors of one rollup cell: a HyperLogLog whose precision is chosen per cell.
//
// Why not agg::HyperLogLog itself: a cell of the whole traffic keeps the live windows' precision
// (14: 16 KiB, 0.81% standard error), so a stored hour and a live hour agree, but the history
// holds about 265 segment cells per hour (every `dimension = value`), and at 16 KiB each their
// sketches were most of the disk. A segment's cell uses precision 12 (4 KiB, 1.6% standard
// error), the design note's plan (docs/design/history-and-segments.md). The live windows keep
// their fixed-size array, whose size the compiler knows in their hot loop.
//
// Add() reads a hash exactly as agg::HyperLogLog does (the top `precision` bits pick the
// register, the leading zeros of the rest give the rank), so a sketch of precision 14 folded to
// 12 (FoldTo) has the very registers of a precision-12 sketch fed the same hashes. Merge() of
// two precisions folds to the lower one first: a range over cells of both is still one set.
//
// The registers are allocated on the first Add() (or a merge, or a decode): most cells of a small
// segment stay small. Not thread-safe.
class VisitorSketch {
 public:
  static constexpr int kTotalsPrecision = agg::HyperLogLog::kPrecision;  // 14
  static constexpr int kSegmentPrecision = 12;
  static constexpr int kMinPrecision = 4;
  static constexpr int kMaxPrecision = 16;  // a register index fits the stored form's 2 bytes

  // `precision` in kMinPrecision..kMaxPrecision.
  explicit VisitorSketch(int precision = kTotalsPrecision);

  int precision() const { return precision_; }
  size_t register_count() const { return size_t{1} << precision_; }
  int max_rank() const { return 64 - precision_ + 1; }

  void Add(uint64_t hash) {
    if (registers_.empty()) registers_.assign(register_count(), 0);
    const size_t index = static_cast<size_t>(hash >> (64 - precision_));
    const uint8_t rank = agg::HyperLogLogRank(hash, precision_);
    if (rank > registers_[index]) registers_[index] = rank;
  }

  // The sketch of the union; at the lower of the two precisions (an empty `other` changes
  // nothing).
  void Merge(const VisitorSketch& other);
  // Lowers the precision to `precision` (no-op if it is not lower): each register of the result
  // is the one a sketch of that precision would hold for the same hashes.
  void FoldTo(int precision);

  double Estimate() const;
  bool IsEmpty() const;

  uint8_t Register(size_t index) const { return registers_.empty() ? 0 : registers_[index]; }
  // Sets register `index` to `rank` if that is higher (a stored cell read back). `index` below
  // register_count(), `rank` at most max_rank().
  void RaiseRegister(size_t index, uint8_t rank) {
    if (registers_.empty()) registers_.assign(register_count(), 0);
    if (rank > registers_[index]) registers_[index] = rank;
  }
  // Replaces the registers with `registers` (a stored cell's dense form read back). False, and
  // no change, unless there are register_count() of them, each at most max_rank().
  bool LoadDense(std::vector<uint8_t> registers);
  // The registers, register_count() of them, or empty if nothing was ever added.
  const std::vector<uint8_t>& registers() const { return registers_; }

 private:
  int precision_;
  std::vector<uint8_t> registers_;
};

}  // namespace rta::storage
