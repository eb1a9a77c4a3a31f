// Integration tests of SubscribeMetrics and SubscribeMetricBatches (subscribe_call.cc, worker.cc):
// the real server on an ephemeral loopback port, real gRPC stubs, and the Prometheus endpoint over
// HTTP.
#include "server/subscribe_call.h"

#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"

using analytics::MetricUpdate;
using rta::testing::AddEveryWindow;
using rta::testing::DeadlineContext;
using rta::testing::MakeEvent;
using rta::testing::NowMs;
using rta::testing::ReadInitial;
using rta::testing::ScrapeValue;
using rta::testing::ServerHarness;
using rta::testing::WaitFor;

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

TEST_CASE("a subscription or GetMetrics that lists no windows gets the default window only",
          "[server][integration][subscribe]") {
  // A client written before windows existed prints "name = value" per update: it must see one
  // value per metric, not four different numbers under one name.
  const auto run = [](const std::string& default_window) {
    auto config = ServerHarness::DefaultConfig();
    if (!default_window.empty()) config.default_window = default_window;
    ServerHarness h(config);
    h.ReportBatch({MakeEvent("w1", "page_view", h.clock().NowMs())});
    h.server().TickForTest();
    auto stub = h.NewStub();
    analytics::SubscriptionRequest request;              // no metric_types, no windows
    request.add_windows(analytics::WINDOW_UNSPECIFIED);  // counts as no window
    auto context = DeadlineContext();
    auto reader = stub->SubscribeMetrics(context.get(), request);
    std::map<std::string, std::set<int>> windows_by_name;  // unlabelled series only
    for (const MetricUpdate& update : ReadInitial(*reader)) {
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT && update.labels().empty()) {
        windows_by_name[update.metric_type()].insert(update.window());
      }
    }
    context->TryCancel();
    grpc::ClientContext query_context;
    query_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    analytics::MetricsSnapshot snapshot;
    REQUIRE(stub->GetMetrics(&query_context, analytics::MetricsQuery(), &snapshot).ok());
    std::map<std::string, std::set<int>> queried;
    for (const MetricUpdate& update : snapshot.metrics()) {
      if (update.labels().empty()) queried[update.metric_type()].insert(update.window());
    }
    CHECK(queried == windows_by_name);  // GetMetrics reads an empty list the same way
    return windows_by_name;
  };
  const auto by_default = run("");
  REQUIRE(by_default.count("page_views") == 1);
  CHECK(by_default.size() >= 20);  // every metric ...
  for (const auto& [name, windows] : by_default) {
    CHECK(windows == std::set<int>{analytics::WINDOW_TOTAL});  // ... once, in WINDOW_TOTAL
  }
  for (const auto& [name, windows] : run("1h")) {
    CHECK(windows == std::set<int>{analytics::WINDOW_1H});
  }
  const auto every = run("all");
  CHECK(every.at("page_views") == std::set<int>{analytics::WINDOW_1M, analytics::WINDOW_5M,
                                                analytics::WINDOW_1H, analytics::WINDOW_TOTAL});
}

TEST_CASE("two subscribers with different filters each get only their series",
          "[server][integration][subscribe]") {
  ServerHarness h;
  auto stub = h.NewStub();
  analytics::SubscriptionRequest a;
  a.add_metric_types("page_views");
  AddEveryWindow(a.mutable_windows());
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
  AddEveryWindow(everything.mutable_windows());
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
  AddEveryWindow(request.mutable_windows());
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

  std::thread drain_push([&] {
    MetricUpdate update;
    while (push_reader->Read(&update)) {
    }
  });
  const auto start = std::chrono::steady_clock::now();
  std::atomic<std::int64_t> ingest_ms{0};
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
    ingest_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
    // Once the ingest stops nothing changes, so the plain stream may well stay silent: end it
    // here rather than leave its Read() to wait for the deadline.
    plain_context->TryCancel();
  });
  int plain_updates = 0;
  MetricUpdate update;
  while (plain_reader->Read(&update)) ++plain_updates;
  ingest.join();
  push_context->TryCancel();
  drain_push.join();
  // A regular tick every 100 ms; a loaded machine may delay a few of them.
  const auto ticks = ingest_ms.load() / 100;
  INFO("regular ticks during the ingest: " << ticks);
  CHECK(ticks >= 10);
  CHECK(plain_updates >= ticks - 3);
}
