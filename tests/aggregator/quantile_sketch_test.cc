#include "server/aggregator/quantile_sketch.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace rta::agg {
namespace {

double Exact(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
}

TEST_CASE("quantile sketch is within 1% of the exact quantile on log-normal data",
          "[aggregator][sketch]") {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> page_load_ms(std::log(800.0), 0.9);
  std::vector<double> values(200'000);
  QuantileSketch sketch;
  for (double& v : values) {
    v = page_load_ms(rng);
    sketch.Add(v);
  }
  std::sort(values.begin(), values.end());
  CHECK(sketch.count() == values.size());
  for (double q : {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    const double exact = Exact(values, q);
    const double estimate = sketch.Quantile(q);
    INFO("q " << q << " exact " << exact << " estimate " << estimate);
    CHECK(std::abs(estimate - exact) / exact <= 0.01);
  }
}

TEST_CASE("quantile sketch merge equals one sketch of all values", "[aggregator][sketch]") {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(3.0, 1.5);
  QuantileSketch a;
  QuantileSketch b;
  QuantileSketch all;
  for (int i = 0; i < 50'000; ++i) {
    const double v = dist(rng);
    (i % 3 == 0 ? a : b).Add(v);
    all.Add(v);
  }
  a.Merge(b);
  CHECK(a.count() == all.count());
  for (double q : {0.5, 0.95, 0.99}) CHECK(a.Quantile(q) == all.Quantile(q));
}

TEST_CASE("quantile sketch edge cases", "[aggregator][sketch]") {
  QuantileSketch sketch;
  CHECK(sketch.Quantile(0.5) == 0.0);
  CHECK(sketch.empty());

  SECTION("zeros and values below the minimum report 0") {
    sketch.Add(0.0, 3);
    sketch.Add(QuantileSketch::kMinValue / 10);
    sketch.Add(100.0);
    CHECK(sketch.Quantile(0.5) == 0.0);
    CHECK(sketch.Quantile(1.0) == Approx(100.0).epsilon(0.005));
  }
  SECTION("both ends of the range keep the relative accuracy") {
    for (double v : {QuantileSketch::kMinValue, QuantileSketch::kMinValue * 1.5,
                     QuantileSketch::kMaxValue / 1.5, QuantileSketch::kMaxValue}) {
      QuantileSketch one;
      one.Add(v);
      INFO("value " << v);
      CHECK(std::abs(one.Quantile(0.5) - v) / v <= QuantileSketch::kRelativeAccuracy + 1e-9);
    }
  }
  SECTION("values above the maximum are clamped to it") {
    sketch.Add(1e12);
    CHECK(sketch.Quantile(0.5) == Approx(QuantileSketch::kMaxValue).epsilon(0.005));
  }
  SECTION("clear empties the sketch") {
    sketch.Add(5.0, 10);
    sketch.Clear();
    CHECK(sketch.empty());
    CHECK(sketch.Quantile(0.99) == 0.0);
    sketch.Add(7.0);
    CHECK(sketch.Quantile(0.5) == Approx(7.0).epsilon(0.005));
  }
}

}  // namespace
}  // namespace rta::agg
