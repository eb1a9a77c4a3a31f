#pragma once

#include <cstdint>
#include <vector>

#include "server/aggregator/state_codec.h"

namespace rta::agg {

// A mergeable quantile sketch after DDSketch (Masson, Rim, Lee, VLDB 2019): values fall into
// logarithmic bins of ratio gamma = (1 + a) / (1 - a) with a = kRelativeAccuracy = 0.5%, so any
// quantile comes back within 0.5% of a value at that rank (well inside the 1% the metrics
// promise). Counts are per bin, so Merge() is an addition and a window's sketch is the sum of
// its buckets' sketches.
//
// Range: values below kMinValue (10 microseconds for page_load_ms) count as 0; values above
// kMaxValue (about 28 hours) are clamped to it. The bins are one dense array (about 2300 bins,
// 18 KiB); Add() is one log() and one increment, and Merge() and Clear() only touch the range
// of bins in use.
//
// Not thread-safe.
class QuantileSketch {
 public:
  static constexpr double kRelativeAccuracy = 0.005;
  static constexpr double kMinValue = 1e-2;
  static constexpr double kMaxValue = 1e8;

  QuantileSketch();

  // `value` must be finite and >= 0 (validated by the caller).
  void Add(double value, uint64_t count = 1);
  void Merge(const QuantileSketch& other);

  // The value at rank q * (count - 1) (q in [0, 1]) within the relative accuracy; 0 when empty.
  double Quantile(double q) const;

  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  void Clear();

  // Checkpoint format (state_codec.h): counts and the bins in use. Load() replaces the contents
  // and fails on a range or total that does not fit.
  void Save(detail::StateWriter& out) const;
  bool Load(detail::StateReader& in);
  // The same contents with every count a varint: the stored form of rollup cells, whose bins
  // mostly hold counts below 128 (one byte instead of eight; zero bins between them included,
  // which ZSTD compresses as well as a sparse form would: history_bench measured no gain from
  // one). Same checks as Load().
  void SaveCompact(detail::StateWriter& out) const;
  bool LoadCompact(detail::StateReader& in);

 private:
  // Shared by Load and LoadCompact: checks the header read by the caller, reads the bins in use
  // with `read_bins(first, count)` and checks that they add up.
  template <typename ReadBins>
  bool LoadBins(detail::StateReader& in, uint64_t count, uint64_t zero_count, int64_t lowest,
                int64_t highest, ReadBins read_bins);

  std::vector<uint64_t> bins_;
  int lowest_ = 0;  // range of bins in use; lowest_ > highest_ when none
  int highest_ = -1;
  uint64_t zero_count_ = 0;
  uint64_t count_ = 0;
};

}  // namespace rta::agg
