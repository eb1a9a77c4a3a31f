#include "server/aggregator/quantile_sketch.h"

#include <algorithm>
#include <cmath>

namespace rta::agg {
namespace {

constexpr double kGamma =
    (1.0 + QuantileSketch::kRelativeAccuracy) / (1.0 - QuantileSketch::kRelativeAccuracy);
const double kLogGamma = std::log(kGamma);
const double kInverseLogGamma = 1.0 / kLogGamma;
// Bin k holds values in (gamma^(k-1), gamma^k]. The keys of kMinValue and kMaxValue,
// ceil(log(v) / log(gamma)), are constants so that the bin count needs no dynamic
// initialisation; the unit test checks values at both ends of the range.
constexpr int kMinKey = -460;
constexpr int kMaxKey = 1843;
constexpr int kBins = kMaxKey - kMinKey + 1;

int BinOf(double value) {
  if (value >= QuantileSketch::kMaxValue) return kBins - 1;
  const int key = static_cast<int>(std::ceil(std::log(value) * kInverseLogGamma));
  return std::clamp(key, kMinKey, kMaxKey) - kMinKey;
}

// The point of bin k with the smallest worst-case relative error: 2 gamma^k / (gamma + 1).
double ValueOf(int bin) { return 2.0 * std::exp((bin + kMinKey) * kLogGamma) / (kGamma + 1.0); }

}  // namespace

QuantileSketch::QuantileSketch() : bins_(static_cast<size_t>(kBins), 0) {}

void QuantileSketch::Add(double value, uint64_t count) {
  count_ += count;
  if (!(value >= kMinValue)) {
    zero_count_ += count;
    return;
  }
  const int bin = BinOf(value);
  bins_[static_cast<size_t>(bin)] += count;
  if (lowest_ > highest_) {
    lowest_ = highest_ = bin;
  } else {
    lowest_ = std::min(lowest_, bin);
    highest_ = std::max(highest_, bin);
  }
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  if (other.count_ == 0) return;
  count_ += other.count_;
  zero_count_ += other.zero_count_;
  if (other.lowest_ > other.highest_) return;
  for (int bin = other.lowest_; bin <= other.highest_; ++bin) {
    bins_[static_cast<size_t>(bin)] += other.bins_[static_cast<size_t>(bin)];
  }
  if (lowest_ > highest_) {
    lowest_ = other.lowest_;
    highest_ = other.highest_;
  } else {
    lowest_ = std::min(lowest_, other.lowest_);
    highest_ = std::max(highest_, other.highest_);
  }
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return 0.0;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(count_ - 1);
  double seen = static_cast<double>(zero_count_);
  if (seen > rank) return 0.0;
  for (int bin = lowest_; bin <= highest_; ++bin) {
    seen += static_cast<double>(bins_[static_cast<size_t>(bin)]);
    if (seen > rank) return ValueOf(bin);
  }
  return ValueOf(highest_);
}

void QuantileSketch::Save(detail::StateWriter& out) const {
  out.U64(count_);
  out.U64(zero_count_);
  out.I64(lowest_);
  out.I64(highest_);
  if (lowest_ <= highest_) {
    out.Raw(bins_.data() + lowest_, static_cast<size_t>(highest_ - lowest_ + 1) * sizeof(uint64_t));
  }
}

bool QuantileSketch::Load(detail::StateReader& in) {
  const uint64_t count = in.U64();
  const uint64_t zero_count = in.U64();
  const int64_t lowest = in.I64();
  const int64_t highest = in.I64();
  return LoadBins(in, count, zero_count, lowest, highest,
                  [&](uint64_t* first, size_t n) { return in.Raw(first, n * sizeof(uint64_t)); });
}

void QuantileSketch::SaveCompact(detail::StateWriter& out) const {
  out.VarU64(count_);
  out.VarU64(zero_count_);
  // The range as its first bin and its length, so that an empty one is the length 0.
  const bool any = lowest_ <= highest_;
  out.VarU64(any ? static_cast<uint64_t>(lowest_) : 0);
  out.VarU64(any ? static_cast<uint64_t>(highest_ - lowest_ + 1) : 0);
  if (any) {
    for (int bin = lowest_; bin <= highest_; ++bin) out.VarU64(bins_[static_cast<size_t>(bin)]);
  }
}

bool QuantileSketch::LoadCompact(detail::StateReader& in) {
  const uint64_t count = in.VarU64();
  const uint64_t zero_count = in.VarU64();
  const uint64_t first = in.VarU64();
  const uint64_t length = in.VarU64();
  if (in.ok() && (first >= static_cast<uint64_t>(kBins) || length > kBins - first)) {
    Clear();
    return in.Fail("corrupt checkpoint: quantile sketch bin range");
  }
  const int64_t lowest = length == 0 ? 0 : static_cast<int64_t>(first);
  const int64_t highest = length == 0 ? -1 : static_cast<int64_t>(first + length - 1);
  return LoadBins(in, count, zero_count, lowest, highest, [&](uint64_t* bins, size_t n) {
    for (size_t i = 0; i < n && in.ok(); ++i) bins[i] = in.VarU64();
    return in.ok();
  });
}

template <typename ReadBins>
bool QuantileSketch::LoadBins(detail::StateReader& in, uint64_t count, uint64_t zero_count,
                              int64_t lowest, int64_t highest, ReadBins read_bins) {
  Clear();
  if (!in.ok()) return false;
  const bool empty_range = lowest == 0 && highest == -1;
  if (!empty_range && !(lowest >= 0 && lowest <= highest && highest < kBins)) {
    return in.Fail("corrupt checkpoint: quantile sketch bin range");
  }
  uint64_t sum = zero_count;
  if (!empty_range) {
    if (!read_bins(bins_.data() + lowest, static_cast<size_t>(highest - lowest + 1))) {
      std::fill(bins_.begin(), bins_.end(), 0);
      return false;
    }
    for (int64_t bin = lowest; bin <= highest; ++bin) sum += bins_[static_cast<size_t>(bin)];
  }
  lowest_ = static_cast<int>(lowest);
  highest_ = static_cast<int>(highest);
  zero_count_ = zero_count;
  count_ = count;
  if (sum != count) return in.Fail("corrupt checkpoint: quantile sketch counts do not add up");
  return true;
}

void QuantileSketch::Clear() {
  if (lowest_ <= highest_) {
    std::fill(bins_.begin() + lowest_, bins_.begin() + highest_ + 1, 0);
  }
  lowest_ = 0;
  highest_ = -1;
  zero_count_ = 0;
  count_ = 0;
}

}  // namespace rta::agg
