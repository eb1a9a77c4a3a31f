#include "dashboard_client/range_mode.h"

#include <catch2/catch.hpp>
#include <limits>

namespace rta::dashboard {
namespace {

TEST_CASE("range flags become a RangeQuery, and a bad one names its flag", "[dashboard][range]") {
  RangeFlags flags;
  flags.range = "30d";
  flags.filters = {"country=DE utm_campaign=spring", "device="};
  flags.breakdown = "page";
  flags.breakdown_limit = 5;
  flags.step = "1d";
  flags.compare = true;
  flags.metrics = {"conversions"};
  analytics::RangeQuery query;
  std::string error;
  REQUIRE(BuildRangeQuery(flags, &query, &error));
  CHECK(query.range() == analytics::RANGE_LAST_30D);
  REQUIRE(query.filters_size() == 3);
  CHECK(query.filters(1).dimension() == "utm_campaign");
  CHECK(query.filters(1).value() == "spring");
  CHECK(query.filters(2).value().empty());  // "device=": the visits without a device
  CHECK(query.breakdown() == "page");
  CHECK(query.breakdown_limit() == 5);
  CHECK(query.step_seconds() == 86'400);
  CHECK(query.compare_previous());
  CHECK(query.metrics(0) == "conversions");

  auto refused = [](RangeFlags bad, const std::string& text) {
    analytics::RangeQuery ignored;
    std::string why;
    CHECK_FALSE(BuildRangeQuery(bad, &ignored, &why));
    CHECK(why.find(text) != std::string::npos);
  };
  RangeFlags bad;
  bad.range = "2w";
  refused(bad, "--range: expected 1h, 24h, 7d, 30d, today, yesterday or month, got \"2w\"");
  bad.range = "today";
  bad.filters = {"DE"};
  refused(bad, "--filter: expected dimension=value");
  bad.filters = {};
  bad.step = "5m";
  refused(bad, "--step: expected 1m, 1h or 1d");
}

TEST_CASE("a range answer as JSON: totals, change, series and breakdown by metric name",
          "[dashboard][range]") {
  analytics::RangeQuery query;
  query.set_compare_previous(true);
  query.set_breakdown("country");
  analytics::RangeResult result;
  result.add_metrics("page_views");
  result.add_metrics("revenue");
  result.set_from_ms(1'764'547'200'000);  // 2025-12-01T00:00:00Z
  result.set_to_ms(1'764'633'600'000);
  result.set_step_seconds(3600);
  result.add_totals(120);
  result.add_totals(0);
  result.add_previous_totals(100);
  result.add_previous_totals(0);
  auto* point = result.add_series();
  point->set_start_ms(1'764'547'200'000);
  point->add_values(120);
  point->add_values(0);
  auto* row = result.add_breakdown();
  row->set_value("DE");
  row->add_values(80);
  row->add_values(0);
  const auto doc = RangeJson(result, query, "127.0.0.1:1");
  CHECK(doc.at("from") == "2025-12-01T00:00:00Z");
  CHECK(doc.at("totals").at("page_views") == 120);
  CHECK(doc.at("previous").at("change").at("page_views").get<double>() == Approx(0.2));
  CHECK(doc.at("previous").at("change").at("revenue").is_null());  // nothing to compare with
  CHECK(doc.at("series").at(0).at("start") == "2025-12-01T00:00:00Z");
  CHECK(doc.at("breakdown").at("dimension") == "country");
  CHECK(doc.at("breakdown").at("rows").at(0).at("value") == "DE");
  CHECK(doc.at("breakdown").at("rows").at(0).at("page_views") == 80);
  const std::string text = RangeText(result, query);
  CHECK(text.find("range 2025-12-01T00:00:00Z .. 2025-12-02T00:00:00Z, step 3600 s") == 0);
  CHECK(text.find("page_views        120") != std::string::npos);
  CHECK(text.find("by country:") != std::string::npos);
}

TEST_CASE("a KPI a segment does not keep (NaN) is null in JSON and a dash in text",
          "[dashboard][range]") {
  analytics::RangeQuery query;
  query.set_compare_previous(true);
  query.add_filters()->set_dimension("country");
  query.add_filters()->set_dimension("device");
  analytics::RangeResult result;
  result.add_metrics("conversions");
  result.add_metrics("unique_visitors");
  result.set_step_seconds(86'400);
  result.add_totals(7);
  result.add_totals(std::numeric_limits<double>::quiet_NaN());
  result.add_previous_totals(5);
  result.add_previous_totals(std::numeric_limits<double>::quiet_NaN());
  const auto doc = RangeJson(result, query, "127.0.0.1:1");
  CHECK(doc.at("totals").at("conversions") == 7);
  CHECK(doc.at("totals").at("unique_visitors").is_null());
  CHECK(doc.at("previous").at("change").at("unique_visitors").is_null());
  CHECK(doc.dump().find("NaN") == std::string::npos);
  const std::string text = RangeText(result, query);
  CHECK(text.find("unique_visitors   —") != std::string::npos);
  CHECK(text.find("nan") == std::string::npos);
}

}  // namespace
}  // namespace rta::dashboard
