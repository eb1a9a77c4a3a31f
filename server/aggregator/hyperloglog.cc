#include "server/aggregator/hyperloglog.h"

#include <cmath>
#include <limits>
#include <numbers>

namespace rta::agg {
namespace {

// sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), for the share of empty registers (Ertl, eq. 33).
double Sigma(double x) {
  if (x == 1.0) return std::numeric_limits<double>::infinity();
  double y = 1.0;
  double z = x;
  for (;;) {
    x *= x;
    const double previous = z;
    z += x * y;
    y += y;
    if (z == previous) return z;
  }
}

// tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3, for saturated registers (eq. 36).
double Tau(double x) {
  if (x == 0.0 || x == 1.0) return 0.0;
  double y = 1.0;
  double z = 1.0 - x;
  for (;;) {
    x = std::sqrt(x);
    const double previous = z;
    y *= 0.5;
    z -= (1.0 - x) * (1.0 - x) * y;
    if (z == previous) return z / 3.0;
  }
}

}  // namespace

double EstimateFromRankHistogram(std::span<const uint32_t> histogram, int precision) {
  const double m = static_cast<double>(uint64_t{1} << precision);
  const int q = 64 - precision;
  if (histogram[0] == m) return 0.0;
  double z = m * Tau(1.0 - histogram[q + 1] / m);
  for (int k = q; k >= 1; --k) z = 0.5 * (z + histogram[k]);
  z += m * Sigma(histogram[0] / m);
  constexpr double kAlphaInfinity = 0.5 / std::numbers::ln2;
  return kAlphaInfinity * m * m / z;
}

void CountRanks(std::span<const uint8_t> registers, std::span<uint32_t> histogram) {
  // Four partial histograms: most registers hold one of a few ranks, and with one histogram
  // each increment would wait for the previous one to the same counter.
  std::array<std::array<uint32_t, 64>, 4> partial{};
  for (size_t i = 0; i < registers.size(); i += 4) {
    ++partial[0][registers[i]];
    ++partial[1][registers[i + 1]];
    ++partial[2][registers[i + 2]];
    ++partial[3][registers[i + 3]];
  }
  for (size_t r = 0; r < histogram.size() && r < 64; ++r) {
    histogram[r] += partial[0][r] + partial[1][r] + partial[2][r] + partial[3][r];
  }
}

void HyperLogLog::Merge(const HyperLogLog& other) {
  // A plain byte loop of known length: GCC vectorizes it to packed byte maxima.
  for (size_t i = 0; i < kRegisters; ++i) {
    registers_[i] = registers_[i] > other.registers_[i] ? registers_[i] : other.registers_[i];
  }
}

bool HyperLogLog::Load(detail::StateReader& in) {
  if (!in.Raw(registers_.data(), registers_.size())) return false;
  for (uint8_t r : registers_) {
    if (r > kMaxRank) return in.Fail("corrupt checkpoint: HyperLogLog register out of range");
  }
  return true;
}

bool HyperLogLog::IsEmpty() const {
  for (uint8_t r : registers_) {
    if (r != 0) return false;
  }
  return true;
}

double HyperLogLog::Estimate() const {
  std::array<uint32_t, kMaxRank + 1> histogram{};
  CountRanks(registers_, histogram);
  return EstimateFromRankHistogram(histogram, kPrecision);
}

}  // namespace rta::agg
