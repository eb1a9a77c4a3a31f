// AnswerRangeQuery against a real rollup store in a temporary directory, filled through the
// accumulator with events whose answers the test counts itself.
#include "server/history_query.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "server/storage/rollup_accumulator.h"
#include "tests/support/temp_dir.h"

namespace rta::server {
namespace {

using storage::RollupEvent;

constexpr int64_t kDayMs = 86'400'000;
// "Now" for the queries: 2027-01-15T12:00:00Z (the 15th of the month, noon).
constexpr int64_t kNowMs = 1'800'000'000'000 - 1'800'000'000'000 % kDayMs + 12 * 3'600'000;
constexpr int64_t kToday = kNowMs - kNowMs % kDayMs;

struct HistoryFixture {
  rta::testing::TempDir dir;
  std::unique_ptr<storage::RollupStore> store;
  storage::RollupAccumulator accumulator{{}};

  HistoryFixture() {
    std::string error;
    store = storage::RollupStore::Open(
        dir.path(), {}, [] { return kNowMs / 1000; }, &error);
    INFO(error);
    REQUIRE(store != nullptr);
  }
  void Add(int64_t ms, RollupEvent::Kind kind, std::string_view country, std::string_view page,
           uint64_t visitor, double value = 0) {
    RollupEvent event;
    event.event_ms = ms;
    event.kind = kind;
    event.value = value;
    event.visitor_hash = visitor * 0x9e3779b97f4a7c15ull + 1;
    event.session_hash = event.visitor_hash;
    event.dimensions = {country, "desktop", page, "", "", "", "page_view"};
    accumulator.Add(event);
  }
  void Write() {
    std::string error;
    REQUIRE(store->Write(accumulator.TakeWrites(), true, &error));
  }
  analytics::RangeResult Query(const analytics::RangeQuery& query) {
    analytics::RangeResult result;
    const grpc::Status status = AnswerRangeQuery(query, *store, kNowMs, &result);
    INFO(status.error_message());
    REQUIRE(status.ok());
    return result;
  }
  grpc::Status Refused(const analytics::RangeQuery& query) {
    analytics::RangeResult result;
    return AnswerRangeQuery(query, *store, kNowMs, &result);
  }
};

// Three days before today: day d has (d + 1) * 10 page views from DE on /a, d * 5 from FR on
// /b, and one purchase of 2.5 from DE; the visitors are distinct per day.
void FillThreeDays(HistoryFixture& h) {
  uint64_t visitor = 1;
  for (int d = 0; d < 3; ++d) {
    const int64_t day = kToday - (3 - d) * kDayMs;
    for (int i = 0; i < (d + 1) * 10; ++i) {
      h.Add(day + i * 60'000, RollupEvent::Kind::kPageView, "DE", "/a", visitor++);
    }
    for (int i = 0; i < d * 5; ++i) {
      h.Add(day + 3'600'000 + i * 1000, RollupEvent::Kind::kPageView, "FR", "/b", visitor++);
    }
    h.Add(day + 7'200'000, RollupEvent::Kind::kPurchase, "DE", "/a", visitor++, 2.5);
  }
  h.Write();
}

analytics::RangeQuery Range(int64_t from, int64_t to, std::vector<std::string> metrics) {
  analytics::RangeQuery query;
  query.set_from_ms(from);
  query.set_to_ms(to);
  for (const std::string& metric : metrics) query.add_metrics(metric);
  return query;
}

TEST_CASE("range query: a daily series and totals equal what was counted", "[history]") {
  HistoryFixture h;
  FillThreeDays(h);
  auto query = Range(kToday - 3 * kDayMs, kToday,
                     {"page_views", "conversions", "revenue", "unique_visitors"});
  query.set_step_seconds(86'400);
  const auto result = h.Query(query);
  REQUIRE(result.series_size() == 3);
  for (int d = 0; d < 3; ++d) {
    INFO("day " << d);
    CHECK(result.series(d).start_ms() == kToday - (3 - d) * kDayMs);
    CHECK(result.series(d).values(0) == (d + 1) * 10 + d * 5);
    CHECK(result.series(d).values(1) == 1);
    CHECK(result.series(d).values(2) == 2.5);
  }
  CHECK(result.totals(0) == 60 + 15);
  CHECK(result.totals(2) == 7.5);
  // Visitors over the range are the union's estimate (78 distinct), not a sum of estimates.
  CHECK(result.totals(3) == Approx(78).epsilon(0.02));
}

TEST_CASE("range query: an hourly step, a filter, and the previous period", "[history]") {
  HistoryFixture h;
  FillThreeDays(h);
  auto query = Range(kToday - kDayMs, kToday, {"page_views"});
  query.set_step_seconds(3600);
  auto* filter = query.add_filters();
  filter->set_dimension("country");
  filter->set_value("FR");
  query.set_compare_previous(true);
  const auto result = h.Query(query);
  REQUIRE(result.series_size() == 1);  // FR's views of the last day, all in its second hour
  CHECK(result.series(0).start_ms() == kToday - kDayMs + 3'600'000);
  CHECK(result.series(0).values(0) == 10);
  CHECK(result.totals(0) == 10);
  CHECK(result.previous_from_ms() == kToday - 2 * kDayMs);
  CHECK(result.previous_to_ms() == kToday - kDayMs);
  CHECK(result.previous_totals(0) == 5);
}

TEST_CASE("range query: a breakdown ranks values and sums the rest as __other__", "[history]") {
  HistoryFixture h;
  FillThreeDays(h);
  h.Add(kToday - kDayMs, RollupEvent::Kind::kPageView, "US", "/c", 9999);
  h.Write();
  auto query = Range(kToday - 3 * kDayMs, kToday, {"page_views", "events_total"});
  query.set_breakdown("country");
  query.set_breakdown_limit(1);
  const auto result = h.Query(query);
  REQUIRE(result.breakdown_size() == 2);
  CHECK(result.breakdown(0).value() == "DE");
  CHECK(result.breakdown(0).values(0) == 60);
  CHECK(result.breakdown(0).values(1) == 63);  // with the purchases
  CHECK(result.breakdown(1).value() == "__other__");
  CHECK(result.breakdown(1).values(0) == 16);  // FR 15 + US 1
}

// Two days before today, in every combination of country (DE, FR), device (desktop, mobile)
// and page (/a, /b, /c): (c + 1) * (v + 1) * (p + 1) page views on day d of combination (c, v,
// p), plus d + 1 purchases of 4.0 each, every event its own visitor and session.
void FillCombinations(HistoryFixture& h) {
  uint64_t visitor = 1;
  const char* countries[] = {"DE", "FR"};
  const char* devices[] = {"desktop", "mobile"};
  const char* pages[] = {"/a", "/b", "/c"};
  for (int d = 0; d < 2; ++d) {
    const int64_t day = kToday - (2 - d) * kDayMs;
    for (int c = 0; c < 2; ++c) {
      for (int v = 0; v < 2; ++v) {
        for (int p = 0; p < 3; ++p) {
          auto add = [&](RollupEvent::Kind kind, double value) {
            RollupEvent event;
            event.event_ms = day + static_cast<int64_t>(visitor % 80'000) * 1000;
            event.kind = kind;
            event.value = value;
            event.visitor_hash = visitor * 0x9e3779b97f4a7c15ull + 1;
            event.session_hash = event.visitor_hash;
            ++visitor;
            event.dimensions = {countries[c],
                                devices[v],
                                pages[p],
                                "",
                                "",
                                "",
                                kind == RollupEvent::Kind::kPurchase ? "purchase" : "page_view"};
            h.accumulator.Add(event);
          };
          for (int i = 0; i < (c + 1) * (v + 1) * (p + 1); ++i) {
            add(RollupEvent::Kind::kPageView, 0);
          }
          for (int i = 0; i <= d; ++i) add(RollupEvent::Kind::kPurchase, 4.0);
        }
      }
    }
  }
  h.Write();
}

TEST_CASE("range query: two conditions and a filter with a breakdown are exact, per day",
          "[history]") {
  HistoryFixture h;
  FillCombinations(h);
  // FR (c = 1) and mobile (v = 1): 2 * 2 * (1 + 2 + 3) = 24 page views a day; purchases: one
  // per page on day 0, two on day 1.
  auto query = Range(kToday - 2 * kDayMs, kToday,
                     {"page_views", "conversions", "revenue", "unique_visitors", "sessions"});
  auto* country = query.add_filters();
  country->set_dimension("country");
  country->set_value("FR");
  auto* device = query.add_filters();
  device->set_dimension("device");
  device->set_value("mobile");
  query.set_compare_previous(true);
  auto result = h.Query(query);
  CHECK(result.step_seconds() == 86'400);  // automatic: pairs are kept per day
  REQUIRE(result.series_size() == 2);
  CHECK(result.series(0).values(0) == 24);
  CHECK(result.series(0).values(1) == 3);
  CHECK(result.series(1).values(1) == 6);
  CHECK(result.series(1).values(2) == 24.0);
  CHECK(std::isnan(result.series(1).values(3)));  // visitors are not kept for a pair
  CHECK(result.totals(0) == 48);
  CHECK(result.totals(2) == 36.0);
  CHECK(std::isnan(result.totals(3)));
  CHECK(result.totals(4) == 48 + 9);  // every event its own session
  CHECK(result.previous_totals(0) == 0);
  bool noted = false;
  for (const std::string& note : result.notes()) {
    noted = noted || note.find("two conditions keeps the additive KPIs only") != std::string::npos;
  }
  CHECK(noted);

  SECTION("the order of the conditions does not matter") {
    query.mutable_filters()->SwapElements(0, 1);
    const auto swapped = h.Query(query);
    CHECK(swapped.totals(0) == 48);
    CHECK(swapped.totals(1) == 9);
  }

  SECTION("one filter and a breakdown: rows from the pair cells") {
    query.mutable_filters()->RemoveLast();  // country = FR
    query.set_breakdown("page");
    query.set_breakdown_limit(2);
    result = h.Query(query);
    // FR's page views by page p over both days: 2 * (1 + 2) * (p + 1) * 2 = 12 (p + 1).
    REQUIRE(result.breakdown_size() == 3);
    CHECK(result.breakdown(0).value() == "/c");
    CHECK(result.breakdown(0).values(0) == 36);
    CHECK(result.breakdown(0).values(1) == 2 * 3);  // 2 devices, 1 + 2 purchases
    CHECK(result.breakdown(0).values(2) == 24.0);
    CHECK(std::isnan(result.breakdown(0).values(3)));
    CHECK(result.breakdown(1).value() == "/b");
    CHECK(result.breakdown(1).values(0) == 24);
    CHECK(result.breakdown(2).value() == "__other__");
    CHECK(result.breakdown(2).values(0) == 12);
    // The totals are the filter's own cells, which keep the sketches: visitors are there.
    CHECK(result.totals(0) == 72);
    CHECK(result.totals(3) == Approx(72 + 18).epsilon(0.02));  // with 18 buyers
  }

  SECTION("a breakdown within a filter on a session-scoped dimension, the other way round") {
    query.clear_filters();
    auto* page = query.add_filters();
    page->set_dimension("page");
    page->set_value("/b");
    query.set_breakdown("country");
    result = h.Query(query);
    REQUIRE(result.breakdown_size() == 2);
    CHECK(result.breakdown(0).value() == "FR");
    CHECK(result.breakdown(0).values(0) == 2 * 3 * 2 * 2);  // (c + 1) (1 + 2) (p + 1), 2 days
    CHECK(result.breakdown(1).value() == "DE");
    CHECK(result.breakdown(1).values(0) == 1 * 3 * 2 * 2);
  }
}

TEST_CASE("range query: named ranges resolve against the clock in UTC days", "[history]") {
  HistoryFixture h;
  FillThreeDays(h);
  analytics::RangeQuery query;
  query.add_metrics("page_views");
  query.set_range(analytics::RANGE_YESTERDAY);
  auto result = h.Query(query);
  CHECK(result.from_ms() == kToday - kDayMs);
  CHECK(result.to_ms() == kToday);
  CHECK(result.totals(0) == 40);
  query.set_range(analytics::RANGE_LAST_7D);
  result = h.Query(query);
  CHECK(result.step_seconds() == 3600);
  CHECK(result.totals(0) == 75);
  query.set_range(analytics::RANGE_THIS_MONTH);
  result = h.Query(query);
  CHECK(result.from_ms() == kToday - 14 * kDayMs);  // the 15th: the 1st is 14 days before
  query.set_range(analytics::RANGE_TODAY);
  result = h.Query(query);
  CHECK(result.from_ms() == kToday);
  CHECK(result.step_seconds() == 3600);  // 12 hours: over 6 hours, hours
  CHECK(result.totals(0) == 0);
}

TEST_CASE("range query: bad fields get INVALID_ARGUMENT naming them, unstored shapes UNIMPLEMENTED",
          "[history]") {
  HistoryFixture h;
  auto expect = [&](const analytics::RangeQuery& query, grpc::StatusCode code,
                    const std::string& text) {
    const grpc::Status status = h.Refused(query);
    INFO(status.error_message());
    CHECK(status.error_code() == code);
    CHECK(status.error_message().find(text) != std::string::npos);
  };
  const auto base = Range(kToday - kDayMs, kToday, {});
  auto query = base;
  query.add_metrics("visits");
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "metrics[0]: unknown metric 'visits'");
  expect(Range(kToday, kToday, {}), grpc::StatusCode::INVALID_ARGUMENT,
         "from_ms: must be before to_ms");
  query = base;
  query.set_step_seconds(120);
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "step_seconds: must be 0 (automatic), 60");
  query = base;
  query.set_step_seconds(60);
  query.set_breakdown("page");
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "step_seconds: 60 keeps totals only");
  query = base;
  query.set_breakdown("city");
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "breakdown: unknown dimension 'city'");
  query = base;
  query.add_filters()->set_dimension("country");
  query.add_filters()->set_dimension("device");
  query.add_filters()->set_dimension("page");
  expect(query, grpc::StatusCode::UNIMPLEMENTED, "filters: 3 conditions; the history keeps");
  query.mutable_filters()->RemoveLast();
  query.set_breakdown("page");
  expect(query, grpc::StatusCode::UNIMPLEMENTED, "breakdown: a breakdown within two conditions");
  query = base;
  query.add_filters()->set_dimension("country");
  query.add_filters()->set_dimension("country");
  expect(query, grpc::StatusCode::INVALID_ARGUMENT,
         "filters[1].dimension: 'country' is already filtered by filters[0]");
  query = base;
  query.add_filters()->set_dimension("country");
  query.set_breakdown("country");
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "breakdown: 'country' is also a filter");
  query.set_breakdown("page");
  query.set_breakdown_by("unique_visitors");
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "breakdown_by: 'unique_visitors' is not kept");
  query.clear_breakdown_by();
  query.set_step_seconds(3600);
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "step_seconds: two conditions, or a filter");
  query = base;
  auto* long_filter = query.add_filters();
  long_filter->set_dimension("page");
  long_filter->set_value(std::string(300, 'p'));
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "filters[0].value: 300 bytes");
  query = base;
  query.add_filters()->set_dimension("town");
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "filters[0].dimension: unknown dimension");
  query = Range(0, kNowMs, {});
  query.set_step_seconds(60);
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "points over the range");
  query = base;
  query.set_range(analytics::RANGE_TODAY);
  expect(query, grpc::StatusCode::INVALID_ARGUMENT, "not both");
}

}  // namespace
}  // namespace rta::server
