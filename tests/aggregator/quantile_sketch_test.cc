#include "server/aggregator/quantile_sketch.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
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

TEST_CASE("varints read back every width, and a damaged one is an error", "[aggregator][codec]") {
  const std::vector<uint64_t> values = {0,
                                        1,
                                        127,
                                        128,
                                        16'383,
                                        16'384,
                                        uint64_t{1} << 35,
                                        std::numeric_limits<uint64_t>::max() - 1,
                                        std::numeric_limits<uint64_t>::max()};
  const std::vector<int64_t> signed_values = {
      0, -1, 1, -64, 64, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
  std::string bytes;
  detail::StateWriter writer(&bytes);
  for (uint64_t v : values) writer.VarU64(v);
  for (int64_t v : signed_values) writer.VarI64(v);
  detail::StateReader reader(bytes);
  for (uint64_t v : values) CHECK(reader.VarU64() == v);
  for (int64_t v : signed_values) CHECK(reader.VarI64() == v);
  CHECK(reader.ok());
  CHECK(reader.AtEnd());

  std::string one;
  detail::StateWriter one_writer(&one);
  one_writer.VarU64(127);
  CHECK(one.size() == 1);
  one_writer.VarI64(-64);
  CHECK(one.size() == 2);  // zigzag: -64 is 127

  SECTION("truncated") {
    detail::StateReader truncated(std::string_view(bytes).substr(0, 4));
    truncated.VarU64();
    truncated.VarU64();
    truncated.VarU64();
    CHECK(truncated.ok());
    truncated.VarU64();  // 128 is two bytes; one is left
    CHECK_FALSE(truncated.ok());
  }
  SECTION("longer than 64 bits") {
    const std::string eleven = std::string(10, '\xFF') + '\x01';
    detail::StateReader too_long(eleven);
    too_long.VarU64();
    CHECK(too_long.error() == "corrupt checkpoint: a varint is too long");
    const std::string overflow = std::string(9, '\xFF') + '\x02';  // bit 64 set
    detail::StateReader overflowing(overflow);
    overflowing.VarU64();
    CHECK_FALSE(overflowing.ok());
  }
}

TEST_CASE("quantile sketch: the compact form reads back the same sketch, smaller",
          "[aggregator][sketch]") {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> page_load_ms(std::log(600.0), 0.7);
  QuantileSketch sketch;
  sketch.Add(0.0, 2);
  for (int i = 0; i < 2'000; ++i) sketch.Add(page_load_ms(rng));
  sketch.Add(500.0, 1'000'000);  // a count that needs three varint bytes
  std::string fixed;
  detail::StateWriter fixed_writer(&fixed);
  sketch.Save(fixed_writer);
  std::string compact;
  detail::StateWriter compact_writer(&compact);
  sketch.SaveCompact(compact_writer);
  INFO("fixed " << fixed.size() << " compact " << compact.size());
  CHECK(compact.size() * 4 < fixed.size());

  QuantileSketch back;
  detail::StateReader reader(compact);
  REQUIRE(back.LoadCompact(reader));
  CHECK(reader.AtEnd());
  CHECK(back.count() == sketch.count());
  for (double q : {0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 1.0})
    CHECK(back.Quantile(q) == sketch.Quantile(q));

  SECTION("empty") {
    std::string empty_bytes;
    detail::StateWriter empty_writer(&empty_bytes);
    QuantileSketch().SaveCompact(empty_writer);
    CHECK(empty_bytes.size() == 4);
    detail::StateReader empty_reader(empty_bytes);
    REQUIRE(back.LoadCompact(empty_reader));
    CHECK(back.empty());
  }
  SECTION("a range beyond the bins") {
    std::string bad;
    detail::StateWriter bad_writer(&bad);
    for (uint64_t v : {1, 0, 100'000, 1}) bad_writer.VarU64(v);
    detail::StateReader bad_reader(bad);
    CHECK_FALSE(back.LoadCompact(bad_reader));
    CHECK(bad_reader.error() == "corrupt checkpoint: quantile sketch bin range");
  }
  SECTION("bins that do not add up to the count") {
    std::string bad = compact;
    bad[0] = static_cast<char>(static_cast<uint8_t>(bad[0]) ^ 1);  // the count's low bit
    detail::StateReader bad_reader(bad);
    CHECK_FALSE(back.LoadCompact(bad_reader));
    CHECK(bad_reader.error() == "corrupt checkpoint: quantile sketch counts do not add up");
  }
  SECTION("every truncation fails") {
    for (size_t size = 0; size < compact.size(); ++size) {
      detail::StateReader truncated(std::string_view(compact).substr(0, size));
      CHECK_FALSE(back.LoadCompact(truncated));
    }
  }
}

}  // namespace
}  // namespace rta::agg
