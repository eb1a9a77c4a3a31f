#include "server/subscription_request.h"

#include <catch2/catch.hpp>
#include <string>

#include "server/metric_filter.h"

using rta::server::CheckSubscriptionRequest;
using rta::server::MetricFilter;
using rta::server::MetricId;
using rta::server::WindowBit;

namespace {
constexpr rta::server::WindowMask kTotal = WindowBit(analytics::WINDOW_TOTAL);
}  // namespace

TEST_CASE("an empty subscription request asks for every metric in the default window",
          "[server][subscription]") {
  analytics::SubscriptionRequest request;
  MetricFilter filter;
  REQUIRE(CheckSubscriptionRequest(request, kTotal, &filter).empty());
  CHECK(filter.Matches(static_cast<uint16_t>(MetricId("revenue")), analytics::WINDOW_TOTAL));
  CHECK(filter.Matches(static_cast<uint16_t>(MetricId("top_pages")), analytics::WINDOW_TOTAL));
  CHECK_FALSE(filter.Matches(static_cast<uint16_t>(MetricId("revenue")), analytics::WINDOW_1H));
  CHECK_FALSE(filter.Matches(static_cast<uint16_t>(MetricId("revenue")), analytics::WINDOW_1M));
  // --default-window 1h and all.
  REQUIRE(CheckSubscriptionRequest(request, WindowBit(analytics::WINDOW_1H), &filter).empty());
  CHECK(filter.Matches(static_cast<uint16_t>(MetricId("revenue")), analytics::WINDOW_1H));
  CHECK_FALSE(filter.Matches(static_cast<uint16_t>(MetricId("revenue")), analytics::WINDOW_TOTAL));
  REQUIRE(CheckSubscriptionRequest(request, rta::server::kAllWindows, &filter).empty());
  for (auto window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                      analytics::WINDOW_TOTAL}) {
    CHECK(filter.Matches(static_cast<uint16_t>(MetricId("revenue")), window));
  }
}

TEST_CASE("a subscription request's metrics and windows become its filter",
          "[server][subscription]") {
  analytics::SubscriptionRequest request;
  request.add_metric_types("page_views");
  request.add_windows(analytics::WINDOW_1M);
  request.add_windows(analytics::WINDOW_UNSPECIFIED);  // ignored beside a real window
  request.set_history_seconds(3600);
  request.set_dashboard_id(std::string(256, 'd'));
  MetricFilter filter;
  REQUIRE(CheckSubscriptionRequest(request, kTotal, &filter).empty());
  const auto page_views = static_cast<uint16_t>(MetricId("page_views"));
  CHECK(filter.Matches(page_views, analytics::WINDOW_1M));
  CHECK_FALSE(filter.Matches(page_views, analytics::WINDOW_5M));
  CHECK_FALSE(filter.Matches(static_cast<uint16_t>(MetricId("revenue")), analytics::WINDOW_1M));
}

TEST_CASE("a subscription request over a limit is refused with the field's name",
          "[server][subscription]") {
  analytics::SubscriptionRequest request;
  request.add_metric_types("page_views");  // valid, so a filter could be built from it
  MetricFilter filter;
  const auto revenue = static_cast<uint16_t>(MetricId("revenue"));
  SECTION("unknown metric") {
    request.add_metric_types("pageviews");
    CHECK(CheckSubscriptionRequest(request, kTotal, &filter)
              .starts_with("metric_types: unknown metric 'pageviews'; valid: events_total, "));
  }
  SECTION("unknown window") {
    request.mutable_windows()->Add(7);  // a value this server does not know
    CHECK(CheckSubscriptionRequest(request, kTotal, &filter)
              .starts_with("windows: unknown window 7"));
  }
  SECTION("history") {
    request.set_history_seconds(3601);
    CHECK(CheckSubscriptionRequest(request, kTotal, &filter) ==
          "history_seconds: at most 3600, got 3601");
  }
  SECTION("dashboard id") {
    request.set_dashboard_id(std::string(257, 'd'));
    CHECK(CheckSubscriptionRequest(request, kTotal, &filter) == "dashboard_id: at most 256 bytes");
  }
  // A refused request leaves the filter as it was (a default one, which matches everything),
  // not half-built from the part of the request that was fine.
  CHECK(filter.Matches(revenue, analytics::WINDOW_1M));
}
