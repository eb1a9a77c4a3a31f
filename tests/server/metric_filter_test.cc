#include "server/metric_filter.h"

#include <catch2/catch.hpp>

#include "server/aggregator/aggregator.h"

using rta::server::MetricFilter;
using rta::server::MetricId;
using rta::server::WindowBit;

namespace {

grpc::Status Build(std::initializer_list<const char*> names, std::initializer_list<int> windows,
                   MetricFilter* out,
                   rta::server::WindowMask default_windows = WindowBit(analytics::WINDOW_TOTAL)) {
  google::protobuf::RepeatedPtrField<std::string> name_field;
  for (const char* name : names) *name_field.Add() = name;
  google::protobuf::RepeatedField<int> window_field;
  for (int window : windows) window_field.Add(window);
  return MetricFilter::Build(name_field, window_field, default_windows, out);
}

}  // namespace

TEST_CASE("an empty filter matches every metric in the default windows", "[server][filter]") {
  const int id = MetricId("page_views");
  REQUIRE(id >= 0);
  MetricFilter filter;
  REQUIRE(Build({}, {}, &filter).ok());  // the server's default: WINDOW_TOTAL only
  CHECK(filter.Matches(static_cast<uint16_t>(id), analytics::WINDOW_TOTAL));
  for (int window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H}) {
    CHECK_FALSE(filter.Matches(static_cast<uint16_t>(id), static_cast<analytics::Window>(window)));
  }
  // WINDOW_UNSPECIFIED alone is no window either.
  REQUIRE(
      Build({}, {analytics::WINDOW_UNSPECIFIED}, &filter, WindowBit(analytics::WINDOW_5M)).ok());
  CHECK(filter.Matches(static_cast<uint16_t>(id), analytics::WINDOW_5M));
  CHECK_FALSE(filter.Matches(static_cast<uint16_t>(id), analytics::WINDOW_TOTAL));
  REQUIRE(Build({}, {}, &filter, rta::server::kAllWindows).ok());
  for (int window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                     analytics::WINDOW_TOTAL}) {
    CHECK(filter.Matches(static_cast<uint16_t>(id), static_cast<analytics::Window>(window)));
  }
}

TEST_CASE("default_window names one window or all of them", "[server][filter]") {
  rta::server::WindowMask mask = 0;
  CHECK((rta::server::ParseDefaultWindows("total", &mask) &&
         mask == WindowBit(analytics::WINDOW_TOTAL)));
  CHECK((rta::server::ParseDefaultWindows("WINDOW_TOTAL", &mask) &&
         mask == WindowBit(analytics::WINDOW_TOTAL)));
  CHECK((rta::server::ParseDefaultWindows("1m", &mask) && mask == WindowBit(analytics::WINDOW_1M)));
  CHECK((rta::server::ParseDefaultWindows("Window_5M", &mask) &&
         mask == WindowBit(analytics::WINDOW_5M)));
  CHECK((rta::server::ParseDefaultWindows("1h", &mask) && mask == WindowBit(analytics::WINDOW_1H)));
  CHECK((rta::server::ParseDefaultWindows("all", &mask) && mask == rta::server::kAllWindows));
  CHECK_FALSE(rta::server::ParseDefaultWindows("", &mask));
  CHECK_FALSE(rta::server::ParseDefaultWindows("unspecified", &mask));
  CHECK_FALSE(rta::server::ParseDefaultWindows("2m", &mask));
}

TEST_CASE("names and windows narrow the filter", "[server][filter]") {
  MetricFilter filter;
  REQUIRE(Build({"page_views", "revenue"}, {analytics::WINDOW_5M}, &filter).ok());
  const auto page_views = static_cast<uint16_t>(MetricId("page_views"));
  const auto revenue = static_cast<uint16_t>(MetricId("revenue"));
  const auto events = static_cast<uint16_t>(MetricId("events_total"));
  CHECK(filter.Matches(page_views, analytics::WINDOW_5M));
  CHECK(filter.Matches(revenue, analytics::WINDOW_5M));
  CHECK_FALSE(filter.Matches(page_views, analytics::WINDOW_1M));
  CHECK_FALSE(filter.Matches(events, analytics::WINDOW_5M));
}

TEST_CASE("an unknown name or window is INVALID_ARGUMENT naming it", "[server][filter]") {
  MetricFilter filter;
  const grpc::Status name = Build({"page_veiws"}, {}, &filter);
  CHECK(name.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(name.error_message(), Catch::Contains("page_veiws"));
  CHECK_THAT(name.error_message(), Catch::Contains("page_views"));  // lists the valid ones
  const grpc::Status window = Build({}, {42}, &filter);
  CHECK(window.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(window.error_message(), Catch::Contains("42"));
  CHECK(MetricId("no_such_metric") == -1);
}
