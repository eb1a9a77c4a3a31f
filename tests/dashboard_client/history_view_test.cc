// The terminal dashboard's history view without a terminal: its keys' cycles, the query it
// sends, and what it draws for an answer (tiles with the change, the breakdown table, a dash
// for a KPI the segment does not keep, the error).
#include "dashboard_client/history_view.h"

#include <catch2/catch.hpp>
#include <limits>
#include <string>

namespace rta::dashboard {
namespace {

bool ScreenHas(const Screen& screen, const std::string& text) {
  return screen.Text().find(text) != std::string::npos;
}

TEST_CASE("history keys: t cycles the ranges, b the dimensions not filtered",
          "[dashboard][history]") {
  CHECK(NextRange("") == "1h");
  CHECK(NextRange("1h") == "24h");
  CHECK(NextRange("24h") == "7d");
  CHECK(NextRange("7d") == "30d");
  CHECK(NextRange("30d") == "");
  CHECK(NextBreakdown("", "") == "page");
  CHECK(NextBreakdown("page", "") == "country");
  CHECK(NextBreakdown("page", "country=DE") == "device");  // country is filtered
  CHECK(NextBreakdown("event_type", "") == "");
  CHECK(NextBreakdown("utm_source", "utm_campaign=spring event_type=purchase") == "");
  CHECK(FilterNames("country=DE utm_campaign=spring", "utm_campaign"));
  CHECK_FALSE(FilterNames("country=DE", "count"));
  CHECK_FALSE(FilterNames("country=DE", ""));
}

TEST_CASE("history query: the range, filters, breakdown rows and the previous period",
          "[dashboard][history]") {
  HistoryView view;
  view.range = "7d";
  view.filter_text = "country=DE  utm_campaign=spring";
  view.breakdown = "page";
  analytics::RangeQuery query;
  std::string error;
  REQUIRE(BuildHistoryQuery(view, 11, &query, &error));
  CHECK(query.range() == analytics::RANGE_LAST_7D);
  REQUIRE(query.filters_size() == 2);
  CHECK(query.filters(1).dimension() == "utm_campaign");
  CHECK(query.filters(1).value() == "spring");
  CHECK(query.breakdown() == "page");
  CHECK(query.breakdown_limit() == 10);  // and __other__ on the eleventh row
  CHECK(query.compare_previous());
  CHECK(query.metrics_size() == 9);
  view.filter_text = "DE";
  CHECK_FALSE(BuildHistoryQuery(view, 11, &query, &error));
  CHECK(error.rfind("filter: expected dimension=value", 0) == 0);
}

TEST_CASE("history view: tiles with the change, a breakdown table, dashes for what is not kept",
          "[dashboard][history]") {
  HistoryView history;
  history.range = "7d";
  history.filter_text = "country=DE";
  history.breakdown = "device";
  history.has_result = true;
  analytics::RangeResult& result = history.result;
  for (const char* metric :
       {"events_total", "page_views", "unique_visitors", "sessions", "conversion_rate", "revenue",
        "bounce_rate", "page_load_ms_p95", "conversions"}) {
    result.add_metrics(metric);
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double totals[] = {600, 240, 71.2, 106, 0.0472, 193.44, 0.481, 2290, 5};
  const double previous[] = {300, 240, 80, 100, 0.05, 100, 0.5, 2000, 4};
  for (double value : totals) result.add_totals(value);
  for (double value : previous) result.add_previous_totals(value);
  result.set_step_seconds(86'400);
  for (int day = 0; day < 7; ++day) {
    auto* point = result.add_series();
    point->set_start_ms(day * 86'400'000LL);
    for (double value : totals) point->add_values(value / 7 * (day + 1));
  }
  auto* row = result.add_breakdown();
  row->set_value("desktop");
  for (double value : {307.0, 123.0, nan, 0.0, 12.42, 0.0, 0.0, nan, 3.0}) row->add_values(value);
  result.add_notes("breakdown: rows within a filter keep the additive KPIs only");
  ViewState view;
  view.server = "127.0.0.1:1";
  Screen screen(120, 40);
  RenderHistory(history, view, &screen);
  INFO(screen.Text());
  CHECK(ScreenHas(screen, "History · last 7 days · country=DE"));
  CHECK(ScreenHas(screen, "│ 600 "));
  CHECK(ScreenHas(screen, "▲ 100%"));  // events doubled
  CHECK(ScreenHas(screen, "│ 71 "));   // visitors, a whole number
  CHECK(ScreenHas(screen, "$193.44"));
  CHECK(ScreenHas(screen, "by device"));
  CHECK(ScreenHas(screen, " desktop"));
  CHECK(ScreenHas(screen, "—"));  // the row's visitors
  CHECK(ScreenHas(screen, "additive KPIs only"));
  CHECK(ScreenHas(screen, "● answered │ last 7 days │ per day"));

  SECTION("an error is shown in its place, and the prompt while it is open") {
    history.error = "the server refused the query (INVALID_ARGUMENT: filters[0].dimension)";
    history.prompt_open = true;
    history.prompt_input = "city=Paris";
    Screen again(120, 40);
    RenderHistory(history, view, &again);
    INFO(again.Text());
    CHECK(ScreenHas(again, "refused the query"));
    CHECK(
        ScreenHas(again, "filter (dimension=value ..., Enter applies, Esc cancels): city=Paris█"));
    CHECK(ScreenHas(again, "● refused"));
  }
  SECTION("a small terminal gets the notice") {
    Screen small(30, 10);
    RenderHistory(history, view, &small);
    CHECK(ScreenHas(small, "Terminal too small"));
  }
}

}  // namespace
}  // namespace rta::dashboard
