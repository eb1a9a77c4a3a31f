// Integration tests of the server as a whole (analytics_server.cc): limits, shutdown, health,
// reflection, Prometheus: the real server on an ephemeral loopback port, real gRPC stubs, and the
// Prometheus endpoint over HTTP.
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <catch2/catch.hpp>
#include <thread>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"

using analytics::MetricUpdate;
using rta::testing::BufferToBytes;
using rta::testing::BytesToBuffer;
using rta::testing::DeadlineContext;
using rta::testing::MakeEvent;
using rta::testing::NowMs;
using rta::testing::ReadInitial;
using rta::testing::ScrapeValue;
using rta::testing::ServerHarness;
using rta::testing::WaitFor;

TEST_CASE("health is SERVING and reflection lists the service", "[server][integration]") {
  ServerHarness h;
  auto channel = h.NewChannel();
  {
    grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                     grpc::internal::RpcMethod::NORMAL_RPC);
    auto context = DeadlineContext();
    grpc::ByteBuffer response;
    grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel.get(), method, context.get(), BytesToBuffer(""), &response);
    REQUIRE(status.ok());
    CHECK(BufferToBytes(response) == std::string("\x08\x01", 2));  // status: SERVING
  }
  {
    grpc::internal::RpcMethod method(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        grpc::internal::RpcMethod::BIDI_STREAMING);
    auto context = DeadlineContext();
    std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
        grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
            channel.get(), method, context.get()));
    REQUIRE(stream->Write(BytesToBuffer(std::string("\x3a\x00", 2))));  // list_services: ""
    grpc::ByteBuffer response;
    REQUIRE(stream->Read(&response));
    CHECK_THAT(BufferToBytes(response), Catch::Contains("analytics.AnalyticsService"));
    stream->WritesDone();
    CHECK(stream->Finish().ok());
  }
}

TEST_CASE("the Prometheus endpoint has the expected series with the right values",
          "[server][integration][prometheus]") {
  ServerHarness h;
  const int64_t now = h.clock().NowMs();
  h.ReportBatch({MakeEvent("m1", "page_view", now), MakeEvent("m2", "page_view", now),
                 MakeEvent("m1", "page_view", now), MakeEvent("m3", "BAD TYPE", now)});
  h.Snapshot();
  using rta::testing::PrometheusValue;
  // The server counts an RPC once it has seen the call end, which can be just after the client
  // has its response: scrape until both calls are counted (bounded).
  std::string metrics;
  rta::testing::WaitFor([&] {
    metrics = rta::testing::HttpGet(h.server().metrics_port(), "/metrics");
    return PrometheusValue(metrics,
                           R"(analytics_rpcs_handled_total{code="OK",method="GetMetrics"})") == 1 &&
           PrometheusValue(
               metrics, R"(analytics_rpcs_handled_total{code="OK",method="ReportEventBatches"})") ==
               1;
  });
  CHECK(PrometheusValue(metrics, "analytics_events_ingested_total") == 2);
  CHECK(PrometheusValue(metrics, "analytics_events_duplicate_total") == 1);
  CHECK(PrometheusValue(metrics, R"(analytics_events_rejected_total{reason="invalid"})") == 1);
  CHECK(PrometheusValue(metrics,
                        R"(analytics_rpcs_handled_total{code="OK",method="ReportEventBatches"})") ==
        1);
  CHECK(PrometheusValue(metrics,
                        R"(analytics_rpcs_handled_total{code="OK",method="GetMetrics"})") == 1);
  CHECK(PrometheusValue(metrics, "analytics_subscribers") == 0);
  CHECK(PrometheusValue(metrics, "analytics_aggregator_tick_duration_seconds_count") >= 2);
  CHECK_THAT(metrics, Catch::Contains("analytics_build_info{"));
  CHECK_THAT(metrics,
             Catch::Contains("analytics_rpc_duration_seconds_bucket{method=\"GetMetrics\""));
  CHECK_THAT(metrics, Catch::Contains(R"(analytics_open_streams{method="ReportEvent"} 0)"));
}

TEST_CASE("limits answer with their documented status codes", "[server][integration]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_batch_events = 10;
  config.max_message_bytes = 64 * 1024;
  config.max_event_bytes = 16 * 1024;
  config.max_subscribers = 2;
  ServerHarness h(config);
  const int64_t now = h.clock().NowMs();

  SECTION("a batch over max_batch_events is INVALID_ARGUMENT naming the field") {
    std::vector<analytics::EventData> events;
    for (int i = 0; i < 11; ++i) events.push_back(MakeEvent("b" + std::to_string(i), "click", now));
    grpc::Status status;
    h.ReportBatch(events, &status);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(status.error_message(), Catch::Contains("events") && Catch::Contains("limit 10"));
  }
  SECTION("a message over max_message_bytes is RESOURCE_EXHAUSTED") {
    auto big = MakeEvent("big", "click", now);
    big.set_page(std::string(100 * 1024, 'x'));
    grpc::Status status;
    h.ReportBatch({big}, &status);
    CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  SECTION("an event over max_event_bytes is rejected, the rest of the batch counts") {
    auto big = MakeEvent("big", "click", now);
    big.set_page(std::string(20 * 1024, 'x'));
    grpc::Status status;
    const auto response = h.ReportBatch({big, MakeEvent("small", "click", now)}, &status);
    CHECK(status.ok());
    CHECK(response.accepted() == 1);
    CHECK(response.rejected() == 1);
  }
  SECTION("an unknown metric is INVALID_ARGUMENT listing the valid ones") {
    auto stub = h.NewStub();
    analytics::MetricsQuery query;
    query.add_metric_types("page_veiws");
    analytics::MetricsSnapshot snapshot;
    auto context = DeadlineContext();
    grpc::Status status = stub->GetMetrics(context.get(), query, &snapshot);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(status.error_message(),
               Catch::Contains("page_veiws") && Catch::Contains("page_views"));

    analytics::SubscriptionRequest request;
    request.add_metric_types("nope");
    auto sub_context = DeadlineContext();
    auto reader = stub->SubscribeMetrics(sub_context.get(), request);
    MetricUpdate update;
    CHECK_FALSE(reader->Read(&update));
    const grpc::Status sub_status = reader->Finish();
    CHECK(sub_status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(sub_status.error_message(), Catch::Contains("events_total"));
  }
  SECTION("history beyond the longest window is INVALID_ARGUMENT") {
    auto stub = h.NewStub();
    analytics::SubscriptionRequest request;
    request.set_history_seconds(3601);
    auto context = DeadlineContext();
    auto reader = stub->SubscribeMetrics(context.get(), request);
    MetricUpdate update;
    CHECK_FALSE(reader->Read(&update));
    CHECK(reader->Finish().error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  SECTION("subscribers beyond max_subscribers get RESOURCE_EXHAUSTED") {
    auto stub = h.NewStub();
    analytics::SubscriptionRequest request;
    request.add_metric_types("events_total");
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<MetricUpdate>>> readers;
    for (int i = 0; i < 2; ++i) {
      contexts.push_back(DeadlineContext());
      readers.push_back(stub->SubscribeMetrics(contexts.back().get(), request));
      ReadInitial(*readers.back());
    }
    auto context = DeadlineContext();
    auto third = stub->SubscribeMetrics(context.get(), request);
    MetricUpdate update;
    CHECK_FALSE(third->Read(&update));
    const grpc::Status status = third->Finish();
    CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK_THAT(status.error_message(), Catch::Contains("max_subscribers"));
    for (auto& c : contexts) c->TryCancel();
  }
}

TEST_CASE("shutdown with 1,000 open subscriber streams completes in seconds",
          "[server][integration][shutdown]") {
  auto config = ServerHarness::DefaultConfig();
  ServerHarness h(config);
  constexpr int kStreams = 1000;
  constexpr int kChannels = 4;
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<analytics::AnalyticsService::Stub>> stubs;
  for (int i = 0; i < kChannels; ++i) stubs.push_back(h.NewStub());
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReader<MetricUpdate>> reader;
    MetricUpdate update;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  for (int i = 0; i < kStreams; ++i) {
    auto s = std::make_unique<Stream>();
    s->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    s->reader = stubs[i % kChannels]->AsyncSubscribeMetrics(&s->context, request, &cq,
                                                            reinterpret_cast<void*>(2 * i));
    streams.push_back(std::move(s));
  }
  // Tags: 2i = started / read done (keep reading), 2i+1 = finished.
  int finished = 0;
  std::thread client([&] {
    void* tag;
    bool ok;
    while (finished < kStreams && cq.Next(&tag, &ok)) {
      const auto value = reinterpret_cast<intptr_t>(tag);
      Stream& s = *streams[value / 2];
      if (value % 2 == 1) {
        ++finished;
      } else if (ok) {
        s.reader->Read(&s.update, tag);
      } else {
        s.reader->Finish(&s.status, reinterpret_cast<void*>(value + 1));
      }
    }
  });
  REQUIRE(WaitFor([&] { return ScrapeValue(h, "analytics_subscribers") == kStreams; },
                  std::chrono::seconds(30)));
  const auto begin = std::chrono::steady_clock::now();
  h.server().Shutdown(std::chrono::seconds(5));
  const auto elapsed = std::chrono::steady_clock::now() - begin;
  CHECK(elapsed < std::chrono::seconds(10));
  client.join();
  CHECK(finished == kStreams);
  int unavailable = 0;
  for (const auto& s : streams)
    unavailable += s->status.error_code() == grpc::StatusCode::UNAVAILABLE;
  CHECK(unavailable == kStreams);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}
