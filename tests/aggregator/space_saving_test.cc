#include "server/aggregator/space_saving.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "server/aggregator/hash.h"
#include "server/aggregator/key_dictionary.h"
#include "server/aggregator/top_merger.h"
#include "tests/aggregator/test_util.h"

namespace rta::agg {
namespace {

using testing::Cat;

uint64_t KeyHash(const std::string& key) {
  return detail::NonZero(detail::HashBytes(key, detail::kSeedKey));
}

// A Zipf(1.1)-distributed stream over `keys` distinct keys, with random weights 1..3.
std::vector<std::pair<std::string, uint64_t>> SkewedStream(size_t events, size_t keys,
                                                           uint64_t seed) {
  std::vector<double> weights(keys);
  for (size_t i = 0; i < keys; ++i) weights[i] = 1.0 / std::pow(static_cast<double>(i + 1), 1.1);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::uniform_int_distribution<uint64_t> weight(1, 3);
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, uint64_t>> stream;
  stream.reserve(events);
  for (size_t i = 0; i < events; ++i) {
    stream.emplace_back(Cat("/page/", pick(rng)), weight(rng));
  }
  return stream;
}

TEST_CASE("space-saving is exact while keys fit in its capacity", "[aggregator][topk]") {
  SpaceSaving summary(10);
  std::map<uint64_t, uint64_t> truth;
  for (int round = 0; round < 7; ++round) {
    for (int key = 1; key <= 10; ++key) {
      summary.Add(static_cast<uint64_t>(key), static_cast<uint64_t>(key * round + 1));
      truth[static_cast<uint64_t>(key)] += static_cast<uint64_t>(key * round + 1);
    }
  }
  CHECK(summary.full());
  REQUIRE(summary.counters().size() == 10);
  for (const auto& counter : summary.counters()) {
    CHECK(counter.error == 0);
    CHECK(counter.count == truth[counter.key]);
  }
  const auto top = summary.Top(3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].key == 10);
  CHECK(top[1].key == 9);
  CHECK(top[2].key == 8);
}

TEST_CASE("space-saving bounds hold on a skewed weighted stream", "[aggregator][topk]") {
  const auto stream = SkewedStream(100'000, 5'000, 1);
  SpaceSaving summary(200);
  std::map<uint64_t, uint64_t> truth;
  uint64_t total = 0;
  for (const auto& [key, weight] : stream) {
    summary.Add(KeyHash(key), weight);
    truth[KeyHash(key)] += weight;
    total += weight;
  }
  CHECK(summary.total() == total);
  for (const auto& counter : summary.counters()) {
    INFO("count " << counter.count << " error " << counter.error);
    CHECK(counter.count >= truth[counter.key]);
    CHECK(counter.count - counter.error <= truth[counter.key]);
  }
  // Keys that are not monitored occurred at most min_count() times.
  for (const auto& [key, count] : truth) {
    bool monitored = false;
    for (const auto& counter : summary.counters()) monitored |= counter.key == key;
    if (!monitored) CHECK(count <= summary.min_count());
  }
  // The heavy hitters are found in order.
  const auto top = summary.Top(5);
  for (size_t i = 0; i < top.size(); ++i) CHECK(top[i].key == KeyHash(Cat("/page/", i)));
}

TEST_CASE("merged summaries keep the guarantee: true count in [count - error, count]",
          "[aggregator][topk]") {
  detail::KeyDictionary dictionary;
  std::vector<SpaceSaving> buckets;
  std::map<std::string, uint64_t> truth;
  uint64_t total = 0;
  for (uint64_t b = 0; b < 12; ++b) {
    buckets.emplace_back(50);
    for (const auto& [key, weight] : SkewedStream(5'000, 2'000, 100 + b)) {
      buckets.back().Add(KeyHash(key), weight);
      dictionary.Intern(KeyHash(key), key);
      truth[key] += weight;
      total += weight;
    }
  }
  detail::TopMerger merger;
  merger.Reset();
  for (const SpaceSaving& bucket : buckets) merger.Add(bucket);
  const auto top = merger.Top(10, total, dictionary);
  REQUIRE(top.size() == 10);
  for (const TopItem& item : top) {
    INFO(item.key << " count " << item.count << " error " << item.error << " truth "
                  << truth[item.key]);
    CHECK(item.count >= truth[item.key]);
    CHECK(item.count - item.error <= truth[item.key]);
    CHECK(item.share == Approx(static_cast<double>(item.count) / static_cast<double>(total)));
  }
  CHECK(top[0].key == "/page/0");
  for (size_t i = 1; i < top.size(); ++i) CHECK(top[i - 1].count >= top[i].count);

  SECTION("summaries that are not full merge exactly") {
    SpaceSaving a(100);
    SpaceSaving b(100);
    a.Add(KeyHash("x"), 5);
    a.Add(KeyHash("y"), 2);
    b.Add(KeyHash("x"), 1);
    dictionary.Intern(KeyHash("x"), "x");
    dictionary.Intern(KeyHash("y"), "y");
    merger.Reset();
    merger.Add(a);
    merger.Add(b);
    const auto exact = merger.Top(10, 8, dictionary);
    REQUIRE(exact.size() == 2);
    CHECK(exact[0] == TopItem{"x", 6, 0, 0.75});
    CHECK(exact[1] == TopItem{"y", 2, 0, 0.25});
  }
}

}  // namespace
}  // namespace rta::agg
