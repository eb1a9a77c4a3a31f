// Integration tests of GetMetrics (get_metrics_call.cc): the real server on an ephemeral
// loopback port, real gRPC stubs, and the Prometheus endpoint over HTTP.
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <catch2/catch.hpp>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"

using rta::testing::MakeEvent;
using rta::testing::NowMs;
using rta::testing::ServerHarness;

TEST_CASE("GetMetrics reflects reported events exactly", "[server][integration]") {
  ServerHarness h;
  const int64_t now = h.clock().NowMs();
  auto purchase = MakeEvent("e4", "purchase", now - 1000, "v2", "s2");
  purchase.set_value(20.5);
  const auto response = h.ReportBatch({MakeEvent("e1", "page_view", now, "v1", "s1"),
                                       MakeEvent("e2", "page_view", now - 5000, "v1", "s1"),
                                       MakeEvent("e3", "page_view", now, "v3", "s3"), purchase,
                                       MakeEvent("e5", "signup", now, "v2", "s2")});
  CHECK(response.accepted() == 5);
  CHECK(response.rejected() == 0);
  CHECK(response.duplicates() == 0);
  for (auto window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                      analytics::WINDOW_TOTAL}) {
    INFO("window " << analytics::Window_Name(window));
    CHECK(h.Metric("events_total", window) == 5);
    CHECK(h.Metric("page_views", window) == 3);
    CHECK(h.Metric("conversions", window) == 2);
    CHECK(h.Metric("revenue", window) == Approx(20.5));
    CHECK(h.Metric("unique_visitors", window) == Approx(3).margin(0.5));
  }
  // Every series of a snapshot carries the tick's sequence and the server's epoch.
  const auto snapshot = h.Snapshot();
  REQUIRE(snapshot.metrics_size() > 0);
  CHECK(snapshot.epoch() != 0);
  for (const auto& m : snapshot.metrics()) {
    CHECK(m.epoch() == snapshot.epoch());
    CHECK(m.window() != analytics::WINDOW_UNSPECIFIED);
  }
}
