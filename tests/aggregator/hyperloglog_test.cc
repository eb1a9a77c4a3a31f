#include "server/aggregator/hyperloglog.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>

#include "server/aggregator/hash.h"
#include "tests/aggregator/test_util.h"

namespace rta::agg {
namespace {

using testing::Cat;

uint64_t VisitorHash(uint64_t i) {
  const std::string id = Cat("visitor-", i);
  return detail::HashBytes(id, detail::kSeedVisitor);
}

double RelativeError(double estimate, double truth) { return std::abs(estimate - truth) / truth; }

TEST_CASE("hyperloglog estimates distinct counts within three standard errors",
          "[aggregator][hll]") {
  auto hll = std::make_unique<HyperLogLog>();
  CHECK(hll->Estimate() == 0.0);
  CHECK(hll->IsEmpty());

  SECTION("small sets are nearly exact") {
    for (uint64_t i = 0; i < 100; ++i) hll->Add(VisitorHash(i));
    CHECK(std::abs(hll->Estimate() - 100.0) < 2.0);
  }
  SECTION("duplicates do not count") {
    for (int round = 0; round < 5; ++round) {
      for (uint64_t i = 0; i < 1000; ++i) hll->Add(VisitorHash(i));
    }
    CHECK(RelativeError(hll->Estimate(), 1000) < 0.0243);
  }
  SECTION("10^6 distinct values: error <= 3 x 0.81%") {
    for (uint64_t i = 0; i < 1'000'000; ++i) hll->Add(VisitorHash(i));
    const double estimate = hll->Estimate();
    INFO("estimate " << estimate);
    CHECK(RelativeError(estimate, 1e6) <= 0.0243);
  }
  SECTION("every cardinality from 10 to 10^5 stays within three standard errors") {
    uint64_t next = 0;
    for (uint64_t target : {10u, 100u, 1'000u, 10'000u, 40'000u, 100'000u}) {
      while (next < target) hll->Add(VisitorHash(next++));
      INFO("n = " << target << ", estimate " << hll->Estimate());
      CHECK(RelativeError(hll->Estimate(), static_cast<double>(target)) <= 0.0243);
    }
  }
}

TEST_CASE("hyperloglog merge is the union: a value in both sketches counts once",
          "[aggregator][hll]") {
  auto a = std::make_unique<HyperLogLog>();
  auto b = std::make_unique<HyperLogLog>();
  for (uint64_t i = 0; i < 20'000; ++i) a->Add(VisitorHash(i));
  for (uint64_t i = 10'000; i < 30'000; ++i) b->Add(VisitorHash(i));
  auto expected = std::make_unique<HyperLogLog>();
  for (uint64_t i = 0; i < 30'000; ++i) expected->Add(VisitorHash(i));

  a->Merge(*b);
  CHECK(a->Estimate() == expected->Estimate());  // register-wise max == sketch of the union
  CHECK(RelativeError(a->Estimate(), 30'000) <= 0.0243);

  SECTION("merging the same sketch again changes nothing") {
    const double before = a->Estimate();
    a->Merge(*b);
    CHECK(a->Estimate() == before);
  }
}

TEST_CASE("hyperloglog rank comes from the bits below the register index", "[aggregator][hll]") {
  auto hll = std::make_unique<HyperLogLog>();
  // Register 3, then a 1 bit right after the 14 index bits: rank 1.
  hll->Add((uint64_t{3} << 50) | (uint64_t{1} << 49));
  CHECK(hll->Register(3) == 1);
  // Register 5, rank bits all zero: the maximum rank, 51.
  hll->Add(uint64_t{5} << 50);
  CHECK(hll->Register(5) == HyperLogLog::kMaxRank);
  hll->Clear();
  CHECK(hll->IsEmpty());
}

}  // namespace
}  // namespace rta::agg
