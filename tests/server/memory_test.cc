// Memory of the real analytics_server binary (a separate process, so that its RSS is its own):
// subscribers joining with an hour of history cost about what a plain subscriber costs, and
// after they leave, or after a churn of subscribers, the server's RSS falls back near its idle
// level (issue 10, item 4).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "analytics.grpc.pb.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"

using Clock = std::chrono::steady_clock;
using rta::testing::ServerProcess;

namespace {

// The value of one series on the server's Prometheus endpoint (NaN when absent).
double Metric(const ServerProcess& server, const std::string& series) {
  return rta::testing::PrometheusValue(rta::testing::HttpGet(server.metrics_port(), "/metrics"),
                                       series);
}

// `count` subscriptions read by one thread on one completion queue, alternating between
// SubscribeMetrics and SubscribeMetricBatches; counts those that have their whole initial batch.
class Subscribers {
 public:
  Subscribers(const std::vector<std::unique_ptr<analytics::AnalyticsService::Stub>>& stubs,
              const analytics::SubscriptionRequest& request, int count) {
    for (int i = 0; i < count; ++i) {
      auto s = std::make_unique<Sub>();
      s->batched = i % 2 == 1;
      s->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      auto& stub = *stubs[static_cast<size_t>(i) % stubs.size()];
      if (s->batched) {
        s->batch_reader = stub.AsyncSubscribeMetricBatches(&s->context, request, &cq_, s.get());
      } else {
        s->reader = stub.AsyncSubscribeMetrics(&s->context, request, &cq_, s.get());
      }
      subs_.push_back(std::move(s));
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~Subscribers() {
    for (auto& s : subs_) s->context.TryCancel();
    thread_.join();
  }
  bool all_joined() const { return joined_.load() == subs_.size(); }
  bool WaitJoined() {
    return rta::testing::WaitFor([&] { return all_joined(); }, std::chrono::seconds(30));
  }
  uint64_t history_updates() const { return history_.load(); }

 private:
  struct Sub {
    bool batched = false;
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReader<analytics::MetricUpdate>> reader;
    std::unique_ptr<grpc::ClientAsyncReader<analytics::MetricUpdateBatch>> batch_reader;
    analytics::MetricUpdate update;
    analytics::MetricUpdateBatch batch;
    grpc::Status status;
    bool started = false, joined = false, finishing = false;
  };
  void Run() {
    size_t finished = 0;
    void* tag;
    bool ok;
    const auto take = [&](Sub& s, const analytics::MetricUpdate& u) {
      if (u.kind() == analytics::UPDATE_KIND_HISTORY) history_.fetch_add(1);
      if (u.kind() == analytics::UPDATE_KIND_SNAPSHOT_END && !s.joined) {
        s.joined = true;
        joined_.fetch_add(1);
      }
    };
    while (finished < subs_.size() && cq_.Next(&tag, &ok)) {
      Sub& s = *static_cast<Sub*>(tag);
      if (s.finishing) {
        ++finished;
      } else if (!ok) {
        s.finishing = true;
        if (s.batched) {
          s.batch_reader->Finish(&s.status, &s);
        } else {
          s.reader->Finish(&s.status, &s);
        }
      } else {
        if (s.started && s.batched) {
          for (const auto& u : s.batch.updates()) take(s, u);
        } else if (s.started) {
          take(s, s.update);
        }
        s.started = true;
        if (s.batched) {
          s.batch_reader->Read(&s.batch, &s);
        } else {
          s.reader->Read(&s.update, &s);
        }
      }
    }
  }
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Sub>> subs_;
  std::atomic<size_t> joined_{0};
  std::atomic<uint64_t> history_{0};
  std::thread thread_;
};

// prefix + number (not `literal + std::to_string()`: GCC 12 warns falsely, -Wrestrict).
std::string Tagged(const char* prefix, uint64_t n) {
  std::string out(prefix);
  out += std::to_string(n);
  return out;
}

// 2,000 events/s in batches of 100 for `seconds`, on one ReportEventBatches stream.
void Ingest(const std::string& address, int seconds) {
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds + 30));
  analytics::EventResponse response;
  auto writer = stub->ReportEventBatches(&context, &response);
  auto next = Clock::now();
  uint64_t id = 0;
  for (int i = 0; i < seconds * 20; ++i) {
    analytics::EventBatch batch;
    for (int e = 0; e < 100; ++e, ++id) {
      *batch.add_events() = rta::testing::MakeEvent(
          Tagged("m", id), id % 7 == 0 ? "click" : "page_view", rta::testing::NowMs(),
          Tagged("v", id % 500), Tagged("s", id % 200));
    }
    if (!writer->Write(batch)) break;
    next += std::chrono::milliseconds(50);
    std::this_thread::sleep_until(next);
  }
  writer->WritesDone();
  REQUIRE(writer->Finish().ok());
  CHECK(response.accepted() == id);
}

double KiB(double bytes) { return bytes / 1024; }

}  // namespace

TEST_CASE("subscribers joining with an hour of history cost little, and memory comes back",
          "[server][memory]") {
  // Defaults but for a small de-duplication table (the default 32 MiB one is paged in as ids
  // arrive and would blur the figures) and a faster tick.
  ServerProcess server({"--metrics-listen", "127.0.0.1:0", "--tick-ms", "100", "--workers", "2",
                        "--dedupe-capacity-log2", "16"});
  REQUIRE(server.listening());
  REQUIRE(server.metrics_port() > 0);
  // History records one point per series per second of real time: 15 s of it (an hour would
  // not fit in a test), which a joiner with history_seconds = 3600 all gets.
  constexpr int kFillSeconds = 15;
  Ingest(server.address(), kFillSeconds);
  std::vector<std::unique_ptr<analytics::AnalyticsService::Stub>> stubs;
  for (int i = 0; i < 4; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("rta.test.channel", i);  // a connection per stub
    stubs.push_back(analytics::AnalyticsService::NewStub(
        grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args)));
  }
  constexpr int kCount = 100;
  analytics::SubscriptionRequest plain_request;  // every series, no history
  rta::testing::AddEveryWindow(plain_request.mutable_windows());
  const uint64_t idle = server.RssBytes();
  double plain_bytes = 0;
  {
    Subscribers plain(stubs, plain_request, kCount);
    REQUIRE(plain.WaitJoined());
    plain_bytes = (static_cast<double>(server.RssBytes()) - static_cast<double>(idle)) / kCount;
  }
  REQUIRE(rta::testing::WaitFor([&] { return Metric(server, "analytics_subscribers") == 0; }));
  // The plain subscribers' memory is the floor this test compares with; gRPC's own per-call
  // memory is ~15 KiB of it (bench/README.md), so at least 8 KiB per subscriber is counted.
  plain_bytes = std::max(plain_bytes, 8.0 * 1024);

  analytics::SubscriptionRequest history_request;
  rta::testing::AddEveryWindow(history_request.mutable_windows());
  history_request.set_history_seconds(3600);
  const uint64_t before = server.RssBytes();
  uint64_t peak = before;
  double joiner_bytes = 0;
  {
    Subscribers joiners(stubs, history_request, kCount);
    REQUIRE(rta::testing::WaitFor(
        [&] {
          peak = std::max(peak, server.RssBytes());
          return joiners.all_joined();
        },
        std::chrono::seconds(30)));
    // About 70 scalar series x kFillSeconds each.
    CHECK(joiners.history_updates() >= static_cast<uint64_t>(kCount) * 50 * (kFillSeconds - 2));
    const uint64_t open = server.RssBytes();
    joiner_bytes = (static_cast<double>(open) - static_cast<double>(before)) / kCount;
    const double peak_bytes = (static_cast<double>(peak) - static_cast<double>(before)) / kCount;
    INFO("plain " << KiB(plain_bytes) << " KiB/subscriber, joiner " << KiB(joiner_bytes)
                  << " KiB/subscriber (peak while joining " << KiB(peak_bytes) << "), idle "
                  << KiB(idle) << " KiB, open " << KiB(open) << " KiB");
    CHECK(joiner_bytes <= 10 * plain_bytes);
    CHECK(peak_bytes <= 10 * plain_bytes);
  }
  // After they leave: back within 20% of the idle RSS in a bounded wait (the server returns
  // freed memory every --malloc-trim-interval-ms, 10 s by default).
  uint64_t rss = 0;
  const bool returned = rta::testing::WaitFor(
      [&] {
        rss = server.RssBytes();
        return static_cast<double>(rss) <= 1.2 * static_cast<double>(idle);
      },
      std::chrono::seconds(30));
  INFO("idle " << KiB(idle) << " KiB, after leaving " << KiB(rss) << " KiB");
  CHECK(returned);
  CHECK(Metric(server, "analytics_malloc_trims_total") >= 1);
}

TEST_CASE("memory comes back after a churn of subscribers", "[server][memory]") {
  ServerProcess server({"--metrics-listen", "127.0.0.1:0", "--tick-ms", "100", "--workers", "2",
                        "--dedupe-capacity-log2", "16"});
  REQUIRE(server.listening());
  REQUIRE(server.metrics_port() > 0);
  std::vector<std::unique_ptr<analytics::AnalyticsService::Stub>> stubs;
  for (int i = 0; i < 4; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("rta.test.channel", i);
    stubs.push_back(analytics::AnalyticsService::NewStub(
        grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args)));
  }
  analytics::SubscriptionRequest request;  // every series
  rta::testing::AddEveryWindow(request.mutable_windows());
  // A warm-up round first: RSS counts the libraries' code pages too, and the first
  // subscriptions page in a few MiB of gRPC and protobuf code that stays resident for good.
  {
    Subscribers warm_up(stubs, request, 100);
    REQUIRE(warm_up.WaitJoined());
  }
  REQUIRE(rta::testing::WaitFor([&] { return Metric(server, "analytics_subscribers") == 0; }));
  const uint64_t idle = server.RssBytes();
  uint64_t peak = idle;
  for (int round = 0; round < 5; ++round) {
    Subscribers wave(stubs, request, 1000);
    REQUIRE(wave.WaitJoined());
    peak = std::max(peak, server.RssBytes());
  }
  REQUIRE(rta::testing::WaitFor([&] { return Metric(server, "analytics_subscribers") == 0; }));
  // The load did raise RSS (or this test would prove nothing).
  CHECK(static_cast<double>(peak) > 1.5 * static_cast<double>(idle));
  uint64_t rss = 0;
  const bool returned = rta::testing::WaitFor(
      [&] {
        rss = server.RssBytes();
        return static_cast<double>(rss) <= 1.2 * static_cast<double>(idle);
      },
      std::chrono::seconds(30));
  INFO("idle " << KiB(idle) << " KiB, peak " << KiB(peak) << " KiB, after " << KiB(rss) << " KiB");
  CHECK(returned);
}
