#include "server/storage/visitor_sketch.h"

#include <algorithm>
#include <array>
#include <bit>

namespace rta::storage {

VisitorSketch::VisitorSketch(int precision)
    : precision_(std::clamp(precision, kMinPrecision, kMaxPrecision)) {}

void VisitorSketch::FoldTo(int precision) {
  precision = std::clamp(precision, kMinPrecision, kMaxPrecision);
  if (precision >= precision_) return;
  const int dropped = precision_ - precision;
  if (!registers_.empty()) {
    std::vector<uint8_t> folded(size_t{1} << precision, 0);
    const size_t low_mask = (size_t{1} << dropped) - 1;
    for (size_t i = 0; i < registers_.size(); ++i) {
      const uint8_t rank = registers_[i];
      if (rank == 0) continue;
      // The dropped low bits of the index are the first bits of the coarser sketch's rest: if
      // any is set, the rank is the position of the first set one among them; if none is, the
      // rank runs on into the bits the finer sketch ranked.
      const size_t low = i & low_mask;
      const int coarse_rank =
          low != 0 ? dropped - static_cast<int>(std::bit_width(low)) + 1 : dropped + rank;
      uint8_t& target = folded[i >> dropped];
      target = std::max(target, static_cast<uint8_t>(coarse_rank));
    }
    registers_ = std::move(folded);
  }
  precision_ = precision;
}

void VisitorSketch::Merge(const VisitorSketch& other) {
  if (other.registers_.empty()) return;  // nothing added: no reason to lose precision
  if (other.precision_ < precision_) FoldTo(other.precision_);
  if (other.precision_ > precision_) {
    VisitorSketch coarse = other;
    coarse.FoldTo(precision_);
    Merge(coarse);
    return;
  }
  if (registers_.empty()) {
    registers_ = other.registers_;
    return;
  }
  // Byte maxima over two buffers that cannot overlap (restrict): GCC vectorizes this loop.
  uint8_t* __restrict mine = registers_.data();
  const uint8_t* __restrict theirs = other.registers_.data();
  for (size_t i = 0; i < registers_.size(); ++i) {
    mine[i] = mine[i] > theirs[i] ? mine[i] : theirs[i];
  }
}

bool VisitorSketch::LoadDense(std::vector<uint8_t> registers) {
  if (registers.size() != register_count()) return false;
  const uint8_t highest = static_cast<uint8_t>(max_rank());
  if (std::any_of(registers.begin(), registers.end(), [&](uint8_t r) { return r > highest; })) {
    return false;
  }
  registers_ = std::move(registers);
  return true;
}

bool VisitorSketch::IsEmpty() const {
  return std::all_of(registers_.begin(), registers_.end(), [](uint8_t r) { return r == 0; });
}

double VisitorSketch::Estimate() const {
  if (registers_.empty()) return 0.0;
  std::array<uint32_t, 64 - kMinPrecision + 2> histogram{};
  agg::CountRanks(registers_, histogram);
  return agg::EstimateFromRankHistogram(histogram, precision_);
}

}  // namespace rta::storage
