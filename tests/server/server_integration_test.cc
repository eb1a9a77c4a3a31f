// Integration tests: the real server on an ephemeral loopback port, real gRPC stubs, and the
// Prometheus endpoint over HTTP.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <thread>

#include "server/subscribe_call.h"
#include "tests/support/server_harness.h"

using analytics::MetricUpdate;
using rta::testing::MakeEvent;
using rta::testing::NowMs;
using rta::testing::ServerHarness;
using rta::testing::WaitFor;

namespace {

grpc::ByteBuffer BytesToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string BufferToBytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

double ScrapeValue(ServerHarness& h, const std::string& series) {
  return rta::testing::PrometheusValue(rta::testing::HttpGet(h.server().metrics_port(), "/metrics"),
                                       series);
}

// Reads until the end of the initial snapshot; returns its updates (SNAPSHOT_END included).
std::vector<MetricUpdate> ReadInitial(grpc::ClientReader<MetricUpdate>& reader) {
  std::vector<MetricUpdate> updates;
  MetricUpdate update;
  while (reader.Read(&update)) {
    updates.push_back(update);
    if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) break;
  }
  return updates;
}

std::unique_ptr<grpc::ClientContext> DeadlineContext(int seconds = 10) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

}  // namespace

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

TEST_CASE("a subscriber gets an initial snapshot, then the values that changed",
          "[server][integration][subscribe]") {
  ServerHarness h;
  auto stub = h.NewStub();
  analytics::SubscriptionRequest request;
  request.add_metric_types("page_views");
  request.add_windows(analytics::WINDOW_TOTAL);
  request.set_dashboard_id("test-dashboard");
  auto context = DeadlineContext();
  auto reader = stub->SubscribeMetrics(context.get(), request);
  const auto initial = ReadInitial(*reader);
  REQUIRE(initial.size() == 2);
  CHECK(initial[0].metric_type() == "page_views");
  CHECK(initial[0].kind() == analytics::UPDATE_KIND_SNAPSHOT);
  CHECK(initial[0].value() == 0);
  CHECK(initial[1].kind() == analytics::UPDATE_KIND_SNAPSHOT_END);

  const int64_t now = h.clock().NowMs();
  h.ReportBatch({MakeEvent("x1", "page_view", now), MakeEvent("x2", "page_view", now),
                 MakeEvent("x3", "click", now)});
  h.server().TickForTest();
  MetricUpdate update;
  double last = 0;
  uint64_t last_sequence = initial[0].sequence();
  while (last != 2 && reader->Read(&update)) {
    CHECK(update.metric_type() == "page_views");
    CHECK(update.window() == analytics::WINDOW_TOTAL);
    CHECK(update.kind() == analytics::UPDATE_KIND_DELTA);
    CHECK(update.sequence() > last_sequence);
    last_sequence = update.sequence();
    last = update.value();
  }
  CHECK(last == 2);
  context->TryCancel();
}

TEST_CASE("two subscribers with different filters each get only their series",
          "[server][integration][subscribe]") {
  ServerHarness h;
  auto stub = h.NewStub();
  analytics::SubscriptionRequest a;
  a.add_metric_types("page_views");
  analytics::SubscriptionRequest b;
  b.add_metric_types("revenue");
  b.add_metric_types("events_by_country");
  b.add_windows(analytics::WINDOW_1M);
  auto ca = DeadlineContext();
  auto cb = DeadlineContext();
  auto ra = stub->SubscribeMetrics(ca.get(), a);
  auto rb = stub->SubscribeMetrics(cb.get(), b);
  const auto ia = ReadInitial(*ra);
  const auto ib = ReadInitial(*rb);
  CHECK(ia.size() == 5);  // page_views in 4 windows + end
  for (size_t i = 0; i + 1 < ia.size(); ++i) CHECK(ia[i].metric_type() == "page_views");
  const int64_t now = h.clock().NowMs();
  auto purchase = MakeEvent("p1", "purchase", now);
  purchase.set_value(9.75);
  purchase.set_country("FR");
  h.ReportBatch({purchase});
  h.server().TickForTest();
  bool saw_revenue = false, saw_fr = false;
  MetricUpdate update;
  while (!(saw_revenue && saw_fr) && rb->Read(&update)) {
    CHECK(update.window() == analytics::WINDOW_1M);
    CHECK((update.metric_type() == "revenue" || update.metric_type() == "events_by_country"));
    if (update.metric_type() == "revenue" && update.value() == Approx(9.75)) saw_revenue = true;
    if (update.metric_type() == "events_by_country" && update.labels().count("country") &&
        update.labels().at("country") == "FR" && update.value() == 1) {
      saw_fr = true;
    }
  }
  CHECK(saw_revenue);
  CHECK(saw_fr);
  ca->TryCancel();
  cb->TryCancel();
}

TEST_CASE("a subscriber that never reads does not hold back a fast one",
          "[server][integration][subscribe]") {
  ServerHarness h;
  // The slow one asks for everything over a connection with a small, fixed flow-control window
  // (no BDP growth), so the window fills within a few ticks and the server's writes stall.
  grpc::ChannelArguments slow_args;
  slow_args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  slow_args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 * 1024);
  slow_args.SetInt("rta.test.slow", 1);
  auto slow_stub = analytics::AnalyticsService::NewStub(
      grpc::CreateCustomChannel(h.address(), grpc::InsecureChannelCredentials(), slow_args));
  analytics::SubscriptionRequest everything;
  auto slow_context = DeadlineContext(60);
  auto slow = slow_stub->SubscribeMetrics(slow_context.get(), everything);

  auto fast_stub = h.NewStub();
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  auto fast_context = DeadlineContext(60);
  auto fast = fast_stub->SubscribeMetrics(fast_context.get(), request);
  ReadInitial(*fast);

  const int kTicks = 150;
  MetricUpdate update;
  double expected = 0;
  for (int tick = 0; tick < kTicks; ++tick) {
    std::vector<analytics::EventData> events;
    for (int i = 0; i < 20; ++i) {
      // Built with append: GCC 12 warns falsely (-Wrestrict) on `literal + std::string`.
      std::string suffix = std::to_string(tick);
      suffix.append("-").append(std::to_string(i));
      events.push_back(MakeEvent(std::string("t").append(suffix), "page_view", h.clock().NowMs(),
                                 std::string("v").append(std::to_string(i)),
                                 std::string("s").append(std::to_string(tick))));
      events.back().set_page(std::string("/p").append(suffix));
    }
    h.ReportBatch(events);
    expected += 20;
    h.clock().AdvanceMs(1000);  // windows slide: most series change every tick
    h.server().TickForTest();
    // The fast subscriber sees this tick's value promptly even though the slow one is stuck.
    while (fast->Read(&update) && update.value() < expected) {
    }
    REQUIRE(update.value() == expected);
  }
  const double conflated = ScrapeValue(h, "analytics_metric_updates_conflated_total");
  // The slow subscriber's writes stalled early: it missed nearly every tick, and the server kept
  // only its next batch (latest wins), not a queue of 150 ticks.
  CHECK(conflated >= kTicks / 2);
  CHECK(ScrapeValue(h, "analytics_subscribers") == 2);
  fast_context->TryCancel();
  slow_context->TryCancel();
  CHECK(WaitFor([&] { return ScrapeValue(h, "analytics_subscribers") == 0; }));
}

TEST_CASE("a client cancelling mid-stream is noticed and cleaned up",
          "[server][integration][subscribe]") {
  ServerHarness h;
  auto stub = h.NewStub();
  analytics::SubscriptionRequest request;
  auto context = DeadlineContext();
  auto reader = stub->SubscribeMetrics(context.get(), request);
  ReadInitial(*reader);
  CHECK(WaitFor([&] { return ScrapeValue(h, "analytics_subscribers") == 1; }));
  context->TryCancel();
  CHECK(WaitFor([&] { return ScrapeValue(h, "analytics_subscribers") == 0; }));
  CHECK(WaitFor([&] {
    return ScrapeValue(
               h, R"(analytics_rpcs_handled_total{code="CANCELLED",method="SubscribeMetrics"})") ==
           1;
  }));
  CHECK(ScrapeValue(h, R"(analytics_open_streams{method="SubscribeMetrics"})") == 0);
}

TEST_CASE("resume after reconnect sends only what changed, or a full snapshot",
          "[server][integration][subscribe]") {
  ServerHarness h;
  auto stub = h.NewStub();
  analytics::SubscriptionRequest request;
  request.add_metric_types("page_views");
  request.add_metric_types("revenue");
  request.add_windows(analytics::WINDOW_TOTAL);
  uint64_t epoch = 0, sequence = 0;
  {
    auto context = DeadlineContext();
    auto reader = stub->SubscribeMetrics(context.get(), request);
    const auto initial = ReadInitial(*reader);
    REQUIRE(initial.size() == 3);
    epoch = initial.back().epoch();
    sequence = initial.back().sequence();
    context->TryCancel();
  }
  h.ReportBatch({MakeEvent("r1", "page_view", h.clock().NowMs())});
  h.server().TickForTest();

  SECTION("same epoch: only page_views changed, recovered = true") {
    request.set_resume_epoch(epoch);
    request.set_resume_after_sequence(sequence);
    auto context = DeadlineContext();
    auto reader = stub->SubscribeMetrics(context.get(), request);
    const auto initial = ReadInitial(*reader);
    REQUIRE(initial.size() == 2);
    CHECK(initial[0].metric_type() == "page_views");
    CHECK(initial[0].value() == 1);
    CHECK(initial[0].recovered());
    CHECK(initial[1].recovered());
    context->TryCancel();
  }
  SECTION("another epoch: full snapshot, recovered = false") {
    request.set_resume_epoch(epoch + 1);
    request.set_resume_after_sequence(sequence);
    auto context = DeadlineContext();
    auto reader = stub->SubscribeMetrics(context.get(), request);
    const auto initial = ReadInitial(*reader);
    REQUIRE(initial.size() == 3);
    CHECK_FALSE(initial[0].recovered());
    CHECK_FALSE(initial.back().recovered());
    CHECK(initial[0].kind() == analytics::UPDATE_KIND_SNAPSHOT);
    context->TryCancel();
  }
}

TEST_CASE("history on join fills the last N seconds per series",
          "[server][integration][subscribe]") {
  ServerHarness h;
  for (int second = 0; second < 5; ++second) {
    h.ReportBatch({MakeEvent("h" + std::to_string(second), "page_view", h.clock().NowMs())});
    h.server().TickForTest();
    h.clock().AdvanceMs(1000);
  }
  h.server().TickForTest();
  auto stub = h.NewStub();
  analytics::SubscriptionRequest request;
  request.add_metric_types("page_views");
  request.add_windows(analytics::WINDOW_TOTAL);
  request.set_history_seconds(10);
  auto context = DeadlineContext();
  auto reader = stub->SubscribeMetrics(context.get(), request);
  const auto initial = ReadInitial(*reader);
  std::vector<double> history;
  for (const auto& u : initial) {
    if (u.kind() == analytics::UPDATE_KIND_HISTORY) history.push_back(u.value());
  }
  // One point per second: the totals after each report (the first tick's 0 is also recorded
  // at start-up, but that second is older than the window asked for only if >10 s passed).
  REQUIRE(history.size() >= 5);
  CHECK(history.back() == 5);
  CHECK(std::is_sorted(history.begin(), history.end()));
  context->TryCancel();
}

TEST_CASE("SubscribeMetricBatches sends SubscribeMetrics' updates, many per message",
          "[server][integration][subscribe]") {
  ServerHarness h;
  // 100 seconds of history on every series: more than one 256 KiB message on join.
  for (int second = 0; second < 100; ++second) {
    h.ReportBatch(
        {MakeEvent(std::string("b").append(std::to_string(second)), "page_view", h.clock().NowMs(),
                   std::string("v").append(std::to_string(second % 7)))});
    h.server().TickForTest();
    h.clock().AdvanceMs(1000);
  }
  h.server().TickForTest();
  analytics::SubscriptionRequest request;
  request.set_history_seconds(120);
  auto stub = h.NewStub();
  auto plain_context = DeadlineContext();
  auto plain = stub->SubscribeMetrics(plain_context.get(), request);
  const auto expected = ReadInitial(*plain);
  auto batched_context = DeadlineContext();
  auto batched = stub->SubscribeMetricBatches(batched_context.get(), request);

  // Reads batches until `count` updates have come; returns them, counting the messages.
  analytics::MetricUpdateBatch batch;
  size_t messages = 0;
  size_t largest = 0;
  const auto read_updates = [&](size_t count) {
    std::vector<MetricUpdate> updates;
    while (updates.size() < count && batched->Read(&batch)) {
      ++messages;
      largest = std::max(largest, batch.ByteSizeLong());
      updates.insert(updates.end(), batch.updates().begin(), batch.updates().end());
    }
    return updates;
  };
  // The same updates byte for byte, but for the sequence: the server's own timer may tick
  // (with no new events) between the two subscriptions.
  const auto same = [](const std::vector<MetricUpdate>& a, const std::vector<MetricUpdate>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      MetricUpdate x = a[i];
      MetricUpdate y = b[i];
      x.clear_sequence();
      y.clear_sequence();
      if (x.SerializeAsString() != y.SerializeAsString()) return false;
    }
    return true;
  };
  const auto initial = read_updates(expected.size());
  CHECK(expected.size() > 5'000);
  CHECK(same(initial, expected));
  CHECK(messages >= 2);
  CHECK(messages < 10);
  CHECK(largest <= rta::server::SubscribeCall::kMaxBatchMessageBytes);

  // Live changes: the same latest values on both streams, in far fewer messages. (The
  // server's own timer also ticks, so the changes may be split over ticks differently.)
  h.ReportBatch({MakeEvent("late", "purchase", h.clock().NowMs(), "v1")});
  h.server().TickForTest();
  const auto key = [](const MetricUpdate& u) {
    std::string k = u.metric_type() + "/" + std::to_string(u.window());
    for (const auto& [name, value] : u.labels()) k += "/" + name + "=" + value;
    return k;
  };
  const auto converted = [](const MetricUpdate& u) {
    return u.metric_type() == "conversions" && u.window() == analytics::WINDOW_TOTAL &&
           u.value() == 1;
  };
  std::map<std::string, double> batched_values, plain_values;
  messages = 0;
  size_t batched_updates = 0;
  bool seen = false;
  while (!seen && batched->Read(&batch)) {
    ++messages;
    for (const MetricUpdate& u : batch.updates()) {
      batched_values[key(u)] = u.value();
      ++batched_updates;
      seen |= converted(u);
    }
  }
  CHECK(seen);
  // The plain stream reaches the same values (its context's deadline bounds the wait).
  const auto caught_up = [&] {
    for (const auto& [k, v] : batched_values) {
      const auto it = plain_values.find(k);
      if (it == plain_values.end() || it->second != v) return false;
    }
    return true;
  };
  MetricUpdate update;
  while (!caught_up() && plain->Read(&update)) plain_values[key(update)] = update.value();
  CHECK(caught_up());
  CHECK(batched_updates > 5);
  CHECK(messages <= 3);
  plain_context->TryCancel();
  batched_context->TryCancel();
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

TEST_CASE("a push_on_change subscriber gets a change without waiting for the tick",
          "[server][integration][subscribe]") {
  auto config = ServerHarness::DefaultConfig();
  config.tick_ms = 60'000;  // no regular tick during the test
  ServerHarness h(config);
  auto stub = h.NewStub();
  analytics::SubscriptionRequest request;
  request.add_metric_types("page_views");
  request.add_windows(analytics::WINDOW_TOTAL);
  request.set_push_on_change(true);
  auto context = DeadlineContext(20);
  auto reader = stub->SubscribeMetrics(context.get(), request);
  ReadInitial(*reader);
  h.ReportBatch({MakeEvent("push1", "page_view", h.clock().NowMs())});
  MetricUpdate update;
  REQUIRE(reader->Read(&update));
  CHECK(update.metric_type() == "page_views");
  CHECK(update.value() == 1);
  context->TryCancel();
}

TEST_CASE("subscribers without push_on_change get every regular tick while pushes run",
          "[server][integration][subscribe]") {
  // Steady ingest makes the server publish early snapshots for the push subscriber all the time.
  // A regular tick's snapshot is often superseded by an early one before a worker gets to it;
  // the plain subscriber must still get an update per regular tick.
  auto config = ServerHarness::DefaultConfig();
  config.tick_ms = 100;
  ServerHarness h(config);
  auto stub = h.NewStub();
  analytics::SubscriptionRequest push_request;
  push_request.add_metric_types("events_total");
  push_request.add_windows(analytics::WINDOW_TOTAL);
  push_request.set_push_on_change(true);
  analytics::SubscriptionRequest plain_request = push_request;
  plain_request.set_push_on_change(false);
  auto push_context = DeadlineContext(20);
  auto push_reader = stub->SubscribeMetrics(push_context.get(), push_request);
  ReadInitial(*push_reader);
  auto plain_context = DeadlineContext(20);
  auto plain_reader = stub->SubscribeMetrics(plain_context.get(), plain_request);
  ReadInitial(*plain_reader);

  std::atomic<bool> ingesting{true};
  std::thread drain_push([&] {
    MetricUpdate update;
    while (push_reader->Read(&update)) {
    }
  });
  const auto start = std::chrono::steady_clock::now();
  std::thread ingest([&] {
    auto context = DeadlineContext(20);
    analytics::EventResponse response;
    auto writer = stub->ReportEvent(context.get(), &response);
    const auto end = start + std::chrono::milliseconds(1500);
    for (int i = 0; i < 1'000'000 && std::chrono::steady_clock::now() < end; ++i) {
      if (!writer->Write(MakeEvent("tick-" + std::to_string(i), "click", h.clock().NowMs()))) {
        break;
      }
    }
    writer->WritesDone();
    (void)writer->Finish();
    ingesting = false;
  });
  int plain_updates = 0;
  MetricUpdate update;
  while (ingesting && plain_reader->Read(&update)) ++plain_updates;
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ingest.join();
  push_context->TryCancel();
  plain_context->TryCancel();
  drain_push.join();
  // A regular tick every 100 ms; a loaded machine may delay a few of them.
  const auto ticks = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() / 100;
  INFO("regular ticks during the ingest: " << ticks);
  CHECK(ticks >= 10);
  CHECK(plain_updates >= ticks - 3);
}

namespace {

analytics::UserAction Action(const std::string& session, const std::string& type,
                             const std::string& target, int64_t time_ms) {
  analytics::UserAction action;
  action.set_session_id(session);
  action.set_visitor_id("v-" + session);
  action.set_action_type(type);
  action.set_target(target);
  action.set_timestamp_ms(time_ms);
  return action;
}

bool HasSignal(const analytics::AnalysisResult& result, const std::string& name) {
  for (const auto& s : result.signals()) {
    if (s.name() == name) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("AnalyzeSession answers each action in order and raises timers on its own",
          "[server][integration][analyze]") {
  ServerHarness h;
  auto stub = h.NewStub();
  auto context = DeadlineContext(20);
  auto stream = stub->AnalyzeSession(context.get());
  const int64_t now = h.clock().NowMs();
  // Two sessions interleaved on one stream; "a" rage-clicks.
  REQUIRE(stream->Write(Action("a", "click", "#buy", now)));
  REQUIRE(stream->Write(Action("b", "page_view", "/", now)));
  REQUIRE(stream->Write(Action("a", "click", "#buy", now + 200)));
  REQUIRE(stream->Write(Action("a", "click", "#buy", now + 400)));
  REQUIRE(stream->Write(Action("a", "Not Valid", "#buy", now + 500)));
  REQUIRE(stream->Write(Action("c", "add_to_cart", "/products/1", now)));
  analytics::AnalysisResult result;
  std::vector<analytics::AnalysisResult> answers;
  for (int i = 0; i < 6; ++i) {
    REQUIRE(stream->Read(&result));
    answers.push_back(result);
  }
  for (int i = 0; i < 6; ++i) CHECK(answers[i].action_sequence() == static_cast<uint64_t>(i + 1));
  CHECK(answers[0].session_id() == "a");
  CHECK(answers[1].session_id() == "b");
  CHECK_FALSE(HasSignal(answers[2], "rage_click"));
  CHECK(HasSignal(answers[3], "rage_click"));
  CHECK(answers[3].action_count() == 3);
  CHECK_THAT(answers[4].error(), Catch::StartsWith("action_type"));  // the stream goes on
  CHECK(answers[5].funnel_stage() == analytics::FUNNEL_STAGE_CART);

  // 30 s later, with no new action, the server tells us the cart is at risk.
  h.clock().AdvanceMs(30'000);
  REQUIRE(stream->Read(&result));
  CHECK(result.action_sequence() == 0);
  CHECK(result.session_id() == "c");
  CHECK(HasSignal(result, "cart_abandonment_risk"));

  stream->WritesDone();
  CHECK(stream->Finish().ok());
  // The signals reach the aggregator and Prometheus.
  CHECK(h.Metric("rage_clicks", analytics::WINDOW_TOTAL) == 1);
  CHECK(h.Metric("cart_abandonments", analytics::WINDOW_TOTAL) == 1);
  CHECK(ScrapeValue(h, R"(analytics_session_signals_total{signal="rage_click"})") == 1);
  CHECK(ScrapeValue(h, R"(analytics_session_signals_total{signal="cart_abandonment_risk"})") == 1);
}

TEST_CASE("AnalyzeSession refuses a session beyond the per-stream limit",
          "[server][integration][analyze]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_sessions_per_analyze_stream = 2;
  ServerHarness h(config);
  auto stub = h.NewStub();
  auto context = DeadlineContext(20);
  auto stream = stub->AnalyzeSession(context.get());
  const int64_t now = h.clock().NowMs();
  for (const char* session : {"s1", "s2", "s3"}) {
    stream->Write(Action(session, "page_view", "/", now));
  }
  analytics::AnalysisResult result;
  int answered = 0;
  while (stream->Read(&result)) ++answered;
  CHECK(answered <= 2);
  const grpc::Status status = stream->Finish();
  CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(status.error_message(), Catch::Contains("max_sessions"));
}
