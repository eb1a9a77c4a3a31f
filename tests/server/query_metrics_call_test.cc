// QueryMetrics over gRPC on a real in-process server: FAILED_PRECONDITION without a data
// directory; with one, a backfilled event reaches the history (and not the live windows), and a
// bad query is INVALID_ARGUMENT naming its field.
#include <catch2/catch.hpp>

#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"

namespace rta::server {
namespace {

using rta::testing::MakeEvent;
using rta::testing::ServerHarness;
using rta::testing::TempDir;
using rta::testing::WaitFor;

constexpr int64_t kQueryDayMs = 86'400'000;

grpc::Status QueryOverGrpc(ServerHarness& server, const analytics::RangeQuery& query,
                           analytics::RangeResult* result) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return server.NewStub()->QueryMetrics(&context, query, result);
}

TEST_CASE("QueryMetrics without a data directory is FAILED_PRECONDITION saying why",
          "[history][query]") {
  ServerHarness server;
  analytics::RangeResult result;
  analytics::RangeQuery query;
  query.set_range(analytics::RANGE_LAST_7D);
  const grpc::Status status = QueryOverGrpc(server, query, &result);
  CHECK(status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(status.error_message().find("--data-dir") != std::string::npos);
}

TEST_CASE("a backfilled event is accepted, skips the live windows and is answered by QueryMetrics",
          "[history][query]") {
  TempDir dir;
  ServerConfig config = ServerHarness::DefaultConfig();
  config.data_dir = dir.path();
  config.history_flush_ms = 100;
  ServerHarness server(config);
  const int64_t now = server.clock().NowMs();
  const int64_t two_days_ago = now - 2 * kQueryDayMs;
  auto purchase = MakeEvent("old-1", "purchase", two_days_ago);
  purchase.set_value(19.99);
  purchase.set_country("DE");
  const auto response =
      server.ReportBatch({purchase, MakeEvent("old-2", "page_view", two_days_ago + 1000),
                          MakeEvent("too-old", "click", now - 731 * kQueryDayMs)});
  CHECK(response.accepted() == 2);
  CHECK(response.rejected() == 1);
  REQUIRE(response.errors_size() == 1);
  CHECK(response.errors(0).find("beyond the history's retention") != std::string::npos);
  CHECK(server.Metric("events_total", analytics::WINDOW_TOTAL) == 0);  // live: nothing

  analytics::RangeQuery query;
  query.set_from_ms(two_days_ago - two_days_ago % kQueryDayMs);
  query.set_to_ms(now);
  query.add_metrics("events_total");
  query.add_metrics("revenue");
  auto* filter = query.add_filters();
  filter->set_dimension("country");
  filter->set_value("DE");
  analytics::RangeResult result;
  REQUIRE(WaitFor([&] {
    result.Clear();
    return QueryOverGrpc(server, query, &result).ok() && result.totals_size() == 2 &&
           result.totals(0) == 2;
  }));
  CHECK(result.totals(1) == Approx(19.99));  // both are DE (MakeEvent's country)
  CHECK(result.step_seconds() == 3600);

  query.set_step_seconds(90);
  const grpc::Status bad = QueryOverGrpc(server, query, &result);
  CHECK(bad.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(bad.error_message().find("step_seconds") == 0);
}

}  // namespace
}  // namespace rta::server
