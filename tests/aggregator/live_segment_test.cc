#include "server/aggregator/live_segment.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "tests/aggregator/test_util.h"

namespace rta::agg {
namespace {

using analytics::WINDOW_TOTAL;
using testing::Cat;
using testing::Event;
using testing::kStartMs;
using testing::Value;

constexpr size_t kCountry = 0;
constexpr size_t kDevice = 1;
constexpr size_t kReferrer = 3;
constexpr size_t kCampaign = 5;

AggregatorConfig SegmentTestConfig() {
  AggregatorConfig config;
  config.dedupe_capacity_log2 = 18;
  config.max_sessions = 100'000;
  return config;
}

analytics::EventData Visit(std::string id, std::string type, std::string session,
                           std::string country, std::string campaign = "") {
  analytics::EventData event =
      Event(std::move(id), std::move(type), kStartMs, "v-" + session, session);
  event.set_country(std::move(country));
  event.set_utm_campaign(std::move(campaign));
  if (event.event_type() == "purchase") event.set_value(10);
  return event;
}

double SegmentValue(const Aggregator& aggregator, int id, std::string_view metric) {
  const auto snapshot = aggregator.SegmentLatest(id);
  REQUIRE(snapshot != nullptr);
  return Value(*snapshot, metric, WINDOW_TOTAL);
}

TEST_CASE("a live segment counts only the events that match its conditions", "[live_segment]") {
  ManualClock clock(kStartMs);
  Aggregator aggregator(SegmentTestConfig(), clock);
  aggregator.Tick();
  REQUIRE(aggregator.Ingest(Visit("before", "page_view", "s0", "DE")).outcome ==
          IngestOutcome::kAccepted);
  const int de = aggregator.OpenSegment({{kCountry, "DE"}});
  const int de_mobile = aggregator.OpenSegment({{kCountry, "DE"}, {kDevice, "mobile"}});
  REQUIRE(de >= 0);
  REQUIRE(de_mobile >= 0);
  REQUIRE(de != de_mobile);
  const auto empty = aggregator.SegmentLatest(de);
  REQUIRE(empty != nullptr);
  CHECK(empty->sequence == 0);
  CHECK(empty->epoch != aggregator.epoch());

  int de_events = 0;
  int de_mobile_events = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string country = i % 3 == 0 ? "DE" : "FR";
    analytics::EventData event =
        Visit(Cat("e", i), i % 4 == 0 ? "purchase" : "page_view", Cat("s", i % 7), country);
    event.set_device(i % 2 == 0 ? "mobile" : "desktop");
    REQUIRE(aggregator.Ingest(event).outcome == IngestOutcome::kAccepted);
    de_events += country == "DE";
    de_mobile_events += country == "DE" && i % 2 == 0;
  }
  aggregator.Tick();
  // The event before the segment opened is not in it; the global windows have everything.
  CHECK(SegmentValue(aggregator, de, "events_total") == de_events);
  CHECK(SegmentValue(aggregator, de_mobile, "events_total") == de_mobile_events);
  CHECK(Value(*aggregator.Latest(), "events_total", WINDOW_TOTAL) == 61);
  CHECK(Value(*aggregator.SegmentLatest(de), "events_by_country", WINDOW_TOTAL, "FR") <= 0);
  CHECK(aggregator.SegmentLatest(de)->sequence == 1);

  aggregator.CloseSegment(de);
  CHECK(aggregator.SegmentLatest(de) == nullptr);
  REQUIRE(aggregator.Ingest(Visit("after", "page_view", "s1", "DE")).outcome ==
          IngestOutcome::kAccepted);
  aggregator.Tick();
  CHECK(SegmentValue(aggregator, de_mobile, "events_total") == de_mobile_events);
  // The closed id is free again after that tick, and a reopened segment starts from zero.
  const int again = aggregator.OpenSegment({{kCountry, "DE"}});
  CHECK(again == de);
  aggregator.Tick();
  CHECK(SegmentValue(aggregator, again, "events_total") == 0);
}

TEST_CASE("a live segment attributes a session's later events to its campaign", "[live_segment]") {
  ManualClock clock(kStartMs);
  Aggregator aggregator(SegmentTestConfig(), clock);
  const int spring = aggregator.OpenSegment({{kCampaign, "spring"}});
  const int spring_de = aggregator.OpenSegment({{kCampaign, "spring"}, {kCountry, "DE"}});
  const int direct = aggregator.OpenSegment({{kReferrer, "(none)"}});
  REQUIRE(spring >= 0);
  REQUIRE(spring_de >= 0);
  REQUIRE(direct >= 0);
  // s1 lands from the campaign in France, then buys from Germany without naming it; s2 buys
  // without any campaign; s3 names another campaign of its own on its purchase.
  const std::vector<analytics::EventData> events = {
      Visit("1", "page_view", "s1", "FR", "spring"), Visit("2", "purchase", "s1", "DE"),
      Visit("3", "page_view", "s2", "DE"),           Visit("4", "purchase", "s2", "DE"),
      Visit("5", "page_view", "s3", "DE", "spring"), Visit("6", "purchase", "s3", "DE", "fall"),
  };
  for (const auto& event : events) {
    REQUIRE(aggregator.Ingest(event).outcome == IngestOutcome::kAccepted);
  }
  aggregator.Tick();
  CHECK(SegmentValue(aggregator, spring, "events_total") == 3);  // 1, 2, 5
  CHECK(SegmentValue(aggregator, spring, "conversions") == 1);   // 2
  CHECK(SegmentValue(aggregator, spring, "revenue") == 10);
  CHECK(SegmentValue(aggregator, spring_de, "events_total") == 2);  // 2, 5
  CHECK(SegmentValue(aggregator, spring_de, "conversions") == 1);
  CHECK(SegmentValue(aggregator, direct, "events_total") == 6);  // no event names a referrer
}

TEST_CASE("a live segment remembers more sessions than one members set holds", "[live_segment]") {
  ManualClock clock(kStartMs);
  Aggregator aggregator(SegmentTestConfig(), clock);
  const int spring = aggregator.OpenSegment({{kCampaign, "spring"}});
  REQUIRE(spring >= 0);
  constexpr int kSessions = 50'000;  // a members set is renewed at 32,768
  for (int i = 0; i < kSessions; ++i) {
    REQUIRE(
        aggregator.Ingest(Visit(Cat("l", i), "page_view", Cat("s", i), "DE", "spring")).outcome ==
        IngestOutcome::kAccepted);
    if (i % 10'000 == 0) aggregator.Tick();
  }
  aggregator.Tick();
  for (int i = 0; i < kSessions; ++i) {
    REQUIRE(aggregator.Ingest(Visit(Cat("p", i), "purchase", Cat("s", i), "DE")).outcome ==
            IngestOutcome::kAccepted);
  }
  aggregator.Tick();
  CHECK(SegmentValue(aggregator, spring, "conversions") == kSessions);
}

TEST_CASE("live segments are bounded and ids are reused only after a tick", "[live_segment]") {
  ManualClock clock(kStartMs);
  Aggregator aggregator(SegmentTestConfig(), clock);
  std::vector<int> ids;
  for (size_t i = 0; i < kMaxLiveSegments; ++i) {
    ids.push_back(aggregator.OpenSegment({{kCountry, Cat("C", static_cast<int64_t>(i))}}));
    REQUIRE(ids.back() >= 0);
  }
  CHECK(aggregator.OpenSegment({{kCountry, "XX"}}) == -1);
  aggregator.CloseSegment(ids[5]);
  CHECK(aggregator.OpenSegment({{kCountry, "XX"}}) == -1);  // still closing
  aggregator.Tick();
  CHECK(aggregator.OpenSegment({{kCountry, "XX"}}) == ids[5]);
}

TEST_CASE("live segments opened and closed during concurrent ingest count exactly",
          "[live_segment][concurrency]") {
  ManualClock clock(kStartMs);
  Aggregator aggregator(SegmentTestConfig(), clock);
  const int de = aggregator.OpenSegment({{kCountry, "DE"}});
  const int spring = aggregator.OpenSegment({{kCampaign, "spring"}});
  REQUIRE(de >= 0);
  REQUIRE(spring >= 0);
  constexpr int kThreads = 4;
  constexpr int kSessionsPerThread = 3'000;
  std::atomic<bool> stop{false};
  // The tick thread keeps opening and closing other segments meanwhile (the races of interest:
  // a matcher freed or reused while a writer reads it).
  std::thread ticker([&] {
    std::vector<int> churn;
    for (int round = 0; !stop.load(); ++round) {
      if (churn.size() < 8) {
        const int id = aggregator.OpenSegment(
            {{kCampaign, round % 2 == 0 ? "spring" : "fall"}, {kCountry, "DE"}});
        if (id >= 0) churn.push_back(id);
      } else {
        aggregator.CloseSegment(churn.front());
        churn.erase(churn.begin());
      }
      aggregator.Tick();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&aggregator, t] {
      for (int i = 0; i < kSessionsPerThread; ++i) {
        const std::string session = Cat("t", t, "-", i);
        const std::string country = i % 2 == 0 ? "DE" : "FR";
        (void)aggregator.Ingest(
            Visit(session + "-l", "page_view", session, country, i % 3 == 0 ? "spring" : ""));
        (void)aggregator.Ingest(Visit(session + "-p", "purchase", session, country));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  stop.store(true);
  ticker.join();
  aggregator.Tick();
  // Per thread: DE is every other session (both events); spring every third (both events).
  CHECK(SegmentValue(aggregator, de, "events_total") == kThreads * kSessionsPerThread);
  CHECK(SegmentValue(aggregator, spring, "conversions") == kThreads * (kSessionsPerThread / 3));
  CHECK(Value(*aggregator.Latest(), "events_total", WINDOW_TOTAL) ==
        2 * kThreads * kSessionsPerThread);
}

TEST_CASE("segment values are compared as the history stores them", "[live_segment]") {
  analytics::EventData event = Event("e", "page_view");
  event.set_page(std::string(300, 'p'));
  CHECK(SegmentFieldsOf(event)[2].size() == kSegmentMaxValueBytes);
  CHECK(RawSegmentFieldsOf(event)[2].size() == 300);
  CHECK(SegmentFieldsOf(event)[0].empty());
  CHECK(SegmentFieldsOf(event)[6] == "page_view");
  detail::SegmentMatcher matcher;
  matcher.conditions = {{2, std::string(kSegmentMaxValueBytes, 'p')}};
  CHECK(matcher.Matches(SegmentFieldsOf(event), 0));
  matcher.conditions = {{0, std::string(kSegmentNoneValue)}};
  CHECK(matcher.Matches(SegmentFieldsOf(event), 0));
  event.set_country("DE");
  CHECK_FALSE(matcher.Matches(SegmentFieldsOf(event), 0));
}

}  // namespace
}  // namespace rta::agg
