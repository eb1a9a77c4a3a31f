#include "server/storage/visitor_sketch.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>

#include "server/storage/rollup_cell.h"
#include "tests/storage/storage_test_util.h"

namespace rta::storage {
namespace {

TEST_CASE("a sketch folded to a lower precision has the registers of one built there",
          "[visitors]") {
  for (const uint64_t count : {1ull, 100ull, 5'000ull, 200'000ull}) {
    VisitorSketch fine(14), coarse(12), coarsest(8);
    for (uint64_t v = 0; v < count; ++v) {
      fine.Add(testing::MixedHash(v));
      coarse.Add(testing::MixedHash(v));
      coarsest.Add(testing::MixedHash(v));
    }
    // A hash whose bits after the index are all zero at precision 14: its maximum rank, which
    // folds to precision 12's maximum (53).
    fine.Add(uint64_t{0x28} << 50);
    coarse.Add(uint64_t{0x28} << 50);
    coarsest.Add(uint64_t{0x28} << 50);
    REQUIRE(coarse.Register(0x28 >> 2) == 53);
    VisitorSketch folded = fine;
    folded.FoldTo(12);
    REQUIRE(folded.precision() == 12);
    REQUIRE(folded.registers() == coarse.registers());
    folded.FoldTo(8);
    REQUIRE(folded.registers() == coarsest.registers());
    folded.FoldTo(10);  // raising is not possible: no change
    REQUIRE(folded.precision() == 8);
  }
}

TEST_CASE("merging sketches of two precisions is the union at the lower one", "[visitors]") {
  VisitorSketch totals(VisitorSketch::kTotalsPrecision);
  VisitorSketch segment(VisitorSketch::kSegmentPrecision);
  VisitorSketch both(VisitorSketch::kSegmentPrecision);
  for (uint64_t v = 0; v < 30'000; ++v) {
    totals.Add(testing::MixedHash(v));
    both.Add(testing::MixedHash(v));
  }
  for (uint64_t v = 20'000; v < 60'000; ++v) {
    segment.Add(testing::MixedHash(v));
    both.Add(testing::MixedHash(v));
  }
  VisitorSketch a = totals;
  a.Merge(segment);
  VisitorSketch b = segment;
  b.Merge(totals);
  REQUIRE(a.precision() == 12);
  REQUIRE(a.registers() == both.registers());
  REQUIRE(b.registers() == both.registers());
  REQUIRE(a.Estimate() == Approx(60'000).epsilon(4 * 0.0163));
  VisitorSketch empty(12);
  REQUIRE(empty.IsEmpty());
  REQUIRE(empty.Estimate() == 0.0);
  empty.Merge(totals);
  REQUIRE(empty.registers() == [&] {
    VisitorSketch t = totals;
    t.FoldTo(12);
    return t.registers();
  }());
}

TEST_CASE("a segment's precision estimates within its bound from ten to ten million",
          "[visitors]") {
  // 1.04 / sqrt(4096) = 1.63% standard error; 4 sigma, and the odd count at the small end
  // (Ertl's estimator counts small sets almost exactly).
  std::mt19937_64 random(11);
  for (const uint64_t count : {10ull, 1'000ull, 50'000ull, 1'000'000ull, 10'000'000ull}) {
    VisitorSketch sketch(VisitorSketch::kSegmentPrecision);
    const uint64_t base = random();
    for (uint64_t v = 0; v < count; ++v) sketch.Add(testing::MixedHash(base + v));
    INFO("count " << count);
    REQUIRE(sketch.Estimate() == Approx(static_cast<double>(count)).epsilon(4 * 0.0163));
  }
}

TEST_CASE("a stored segment cell is a quarter of a totals cell once dense", "[visitors]") {
  RollupCell totals(VisitorSketch::kTotalsPrecision);
  RollupCell segment(VisitorSketch::kSegmentPrecision);
  for (uint64_t v = 0; v < 100'000; ++v) {
    totals.AddVisitor(testing::MixedHash(v));
    segment.AddVisitor(testing::MixedHash(v));
  }
  REQUIRE(totals.Encode().size() > 16'384);
  REQUIRE(segment.Encode().size() < 4'096 + 128);
  // Merged into a range's cell (which starts at the totals' precision), the segment folds it.
  RollupCell range;
  range.Merge(segment);
  range.Merge(totals);
  REQUIRE(range.visitors().precision() == VisitorSketch::kSegmentPrecision);
  REQUIRE(range.UniqueVisitors() == segment.UniqueVisitors());
}

}  // namespace
}  // namespace rta::storage
