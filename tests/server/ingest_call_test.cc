// Integration tests of ReportEvent and ReportEventBatches (ingest_call.cc): the real server on an
// ephemeral loopback port, real gRPC stubs, and the Prometheus endpoint over HTTP.
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"

using rta::testing::DeadlineContext;
using rta::testing::MakeEvent;
using rta::testing::NowMs;
using rta::testing::ServerHarness;
using rta::testing::WaitFor;

TEST_CASE("ReportEvent counts one event per message, with duplicates once",
          "[server][integration]") {
  ServerHarness h;
  auto stub = h.NewStub();
  auto context = DeadlineContext();
  analytics::EventResponse response;
  auto writer = stub->ReportEvent(context.get(), &response);
  const int64_t now = h.clock().NowMs();
  for (const char* id : {"a", "b", "c", "a"}) REQUIRE(writer->Write(MakeEvent(id, "click", now)));
  writer->WritesDone();
  REQUIRE(writer->Finish().ok());
  CHECK(response.accepted() == 3);
  CHECK(response.duplicates() == 1);
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 3);

  SECTION("a retry of the same events on a new stream counts nothing twice") {
    const auto again = h.ReportBatch({MakeEvent("a", "click", now), MakeEvent("b", "click", now)});
    CHECK(again.accepted() == 0);
    CHECK(again.duplicates() == 2);
    CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 3);
  }
}

TEST_CASE("bad events are refused with the field and position, good ones still count",
          "[server][integration]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_event_properties = 4;
  ServerHarness h(config);
  const int64_t now = h.clock().NowMs();
  auto too_many_properties = MakeEvent("p", "click", now);
  for (int i = 0; i < 5; ++i)
    (*too_many_properties.mutable_properties())["k" + std::to_string(i)] = "v";
  const auto response = h.ReportBatch(
      {MakeEvent("ok1", "page_view", now), MakeEvent("old", "page_view", now - 2 * 3600 * 1000),
       MakeEvent("future", "page_view", now + 120 * 1000), MakeEvent("", "page_view", now),
       too_many_properties, MakeEvent("ok2", "page_view", now)});
  CHECK(response.accepted() == 2);
  CHECK(response.rejected() == 4);
  REQUIRE(response.errors_size() == 4);
  CHECK_THAT(response.errors(0), Catch::Contains("event #1") && Catch::Contains("id old") &&
                                     Catch::Contains("timestamp_ms"));
  CHECK_THAT(response.errors(1), Catch::Contains("event #2") && Catch::Contains("timestamp_ms"));
  CHECK_THAT(response.errors(2), Catch::Contains("event #3") && Catch::Contains("event_id"));
  CHECK_THAT(response.errors(3), Catch::Contains("event #4") && Catch::Contains("properties"));
  CHECK(h.Metric("page_views", analytics::WINDOW_TOTAL) == 2);
  const std::string metrics = rta::testing::HttpGet(h.server().metrics_port(), "/metrics");
  CHECK(rta::testing::PrometheusValue(metrics, "analytics_events_ingested_total") == 2);
  CHECK(rta::testing::PrometheusValue(metrics,
                                      R"(analytics_events_rejected_total{reason="too_old"})") == 1);
  CHECK(rta::testing::PrometheusValue(
            metrics, R"(analytics_events_rejected_total{reason="in_future"})") == 1);
  CHECK(rta::testing::PrometheusValue(metrics,
                                      R"(analytics_events_rejected_total{reason="invalid"})") == 1);
  CHECK(rta::testing::PrometheusValue(
            metrics, R"(analytics_events_rejected_total{reason="too_large"})") == 1);
}

TEST_CASE("a refused event's long multi-byte id is quoted without splitting a character",
          "[server][integration]") {
  // Found by fuzz/ingest_fuzzer: the id was cut at 128 bytes, inside a 2-byte character, and the
  // client could not parse the response (proto3 strings must be UTF-8).
  ServerHarness h;
  std::string id = "x";  // one ASCII byte first: byte 128 falls inside a character
  for (int i = 0; i < 100; ++i) id += "\xC3\xA9";  // 'e' with an accent, 2 bytes each
  analytics::EventData event = MakeEvent(id, "no_such_type", h.clock().NowMs());
  grpc::Status status;
  const auto response = h.ReportBatch({event}, &status);
  INFO(status.error_message());
  REQUIRE(status.ok());
  CHECK(response.rejected() == 1);
  REQUIRE(response.errors_size() == 1);
  CHECK_THAT(response.errors(0), Catch::Contains("(id " + id.substr(0, 127) + ")"));
}

TEST_CASE("a client that cancels its ingest stream is counted as CANCELLED, not OK",
          "[server][integration]") {
  ServerHarness h;
  auto stub = h.NewStub();
  grpc::ClientContext context;
  analytics::EventResponse response;
  auto writer = stub->ReportEvent(&context, &response);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(writer->Write(MakeEvent("cancel-" + std::to_string(i), "click", h.clock().NowMs())));
  }
  REQUIRE(WaitFor([&] { return h.Metric("events_total", analytics::WINDOW_TOTAL) == 3; }));
  context.TryCancel();
  CHECK(writer->Finish().error_code() == grpc::StatusCode::CANCELLED);
  std::string metrics;
  const bool counted = WaitFor([&] {
    metrics = rta::testing::HttpGet(h.server().metrics_port(), "/metrics");
    return rta::testing::PrometheusValue(
               metrics, R"(analytics_rpcs_handled_total{code="CANCELLED",method="ReportEvent"})") ==
           1;
  });
  INFO(metrics);
  CHECK(counted);
  CHECK(std::isnan(rta::testing::PrometheusValue(
      metrics, R"(analytics_rpcs_handled_total{code="OK",method="ReportEvent"})")));
}

TEST_CASE("streams failed on purpose for tests lose nothing once retried",
          "[server][integration]") {
  ServerHarness h(ServerHarness::DefaultConfig(),
                  ServerHarness::FailEveryNthStreamAfterFirstMessage(1));
  grpc::Status status;
  const auto response = h.ReportBatch({MakeEvent("f1", "click", h.clock().NowMs())}, &status);
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  // The first message was counted before the failure; its retry is a duplicate.
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 1);
}
