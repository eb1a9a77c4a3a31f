// Live segments in cluster mode (subscriptions with filters on an analytics_server with
// --cluster): three nodes beside a real 3-server NATS cluster (JetStream, replicas 3); node A
// watches country = DE, node C watches utm_campaign = black_friday AND device = mobile; a
// generated file of the last few minutes goes in through nodes B and C only, and both
// subscribers must end with the file's exact answers for their segment (events, page views,
// conversions, revenue; unique visitors within the HyperLogLog's bound), in WINDOW_TOTAL and
// WINDOW_1H: every partition owner, on every node, counts the segment and ships its deltas.
// Loopback only; every wait is bounded.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "analytics.grpc.pb.h"
#include "tests/cluster/cluster_test_util.h"
#include "tests/support/nats_cluster.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"
#include "tests/support/sketch_bounds.h"
#include "tests/support/temp_dir.h"

namespace {

using rta::testing::Head;
using rta::testing::HyperLogLogBound;
using rta::testing::Join;
using rta::testing::LogTail;
using rta::testing::MsSince;
using rta::testing::NatsCluster;
using rta::testing::NowMs;
using rta::testing::ReadFile;
using rta::testing::Scrape;
using rta::testing::ServerProcess;
using rta::testing::Spawn;
using rta::testing::StartNode;
using rta::testing::TempDir;
using rta::testing::WaitChild;
using rta::testing::WaitFor;
using Stub = analytics::AnalyticsService::Stub;
using Nodes = std::vector<std::unique_ptr<ServerProcess>>;

constexpr int64_t kMinuteMs = 60'000;
// The segments: one condition on the event's own country, and two where the campaign is the
// session's (a purchase that names no campaign counts for its landing's campaign).
constexpr char kCountry[] = "DE";
constexpr char kCampaign[] = "black_friday";
constexpr char kDevice[] = "mobile";
// The windows checked: WINDOW_TOTAL (since the segment opened, as the single node's tests
// check) and WINDOW_1H, which covers events of the last hour.
constexpr analytics::Window kWindows[] = {analytics::WINDOW_TOTAL, analytics::WINDOW_1H};
// How long a new segment takes to reach every partition owner: the owners poll the cluster's
// segment bucket about every second and open what they find within a second or two. No client
// can see that every owner has opened it (a segment counts only what its owners see once it is
// open), so the test waits this long, twice the expected worst case, before it sends the traffic.
constexpr auto kSegmentPropagation = std::chrono::seconds(4);

// What a set of events says, counted exactly.
struct Counts {
  uint64_t events = 0, page_views = 0, conversions = 0;
  int64_t revenue_cents = 0;  // the generator's values are whole cents
  std::set<std::string> visitors;

  void Add(const nlohmann::json& event) {
    const std::string type = event.value("event_type", "");
    ++events;
    if (type == "page_view") ++page_views;
    if (type == "purchase" || type == "signup") ++conversions;
    if (type == "purchase") revenue_cents += std::llround(event.value("value", 0.0) * 100);
    if (event.contains("visitor_id")) visitors.insert(event.at("visitor_id"));
  }
};

// The file's answers: the whole file and each segment.
struct Answers {
  uint64_t lines = 0;
  int64_t first_ms = 0, last_ms = 0;
  Counts all, country, campaign_device;
  // Events of the campaign segment that name no campaign of their own (their session's).
  uint64_t campaign_by_session = 0;
};

// Counts the file in its order, as a partition owner sees a session's events (one reporter
// lane and one partition per session): a session joins the campaign at an event that names
// the campaign; an event that names no campaign counts for it when its session joined before.
Answers CountFile(const std::string& path) {
  Answers answers;
  std::set<std::string> campaign_sessions;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const auto event = nlohmann::json::parse(line);
    const int64_t ms = event.at("timestamp_ms").get<int64_t>();
    answers.first_ms = answers.lines == 0 ? ms : std::min(answers.first_ms, ms);
    answers.last_ms = std::max(answers.last_ms, ms);
    ++answers.lines;
    answers.all.Add(event);
    if (event.value("country", "") == kCountry) answers.country.Add(event);
    const std::string session = event.value("session_id", "");
    const std::string campaign = event.value("utm_campaign", "");
    if (campaign == kCampaign) campaign_sessions.insert(session);
    const bool by_session = campaign.empty() && campaign_sessions.count(session) == 1;
    if ((campaign == kCampaign || by_session) && event.value("device", "") == kDevice) {
      answers.campaign_device.Add(event);
      answers.campaign_by_session += by_session ? 1 : 0;
    }
  }
  return answers;
}

// `events` events from `start_ms` on at `rate` per second of event time, with `seed`.
std::string Generate(const std::string& dir, int events, int seed, int64_t start_ms, double rate) {
  const std::string path = dir + "/traffic.jsonl";
  const std::string command = std::string(RTA_EVENT_REPORTER_BINARY) + " generate --events " +
                              std::to_string(events) + " --rate " + std::to_string(rate) +
                              " --seed " + std::to_string(seed) + " --start-ms " +
                              std::to_string(start_ms) + " --output " + path + " --quiet";
  REQUIRE(std::system(command.c_str()) == 0);
  return path;
}

analytics::SubscriptionRequest SegmentRequest(
    const std::vector<std::pair<std::string, std::string>>& filters) {
  analytics::SubscriptionRequest request;
  request.set_dashboard_id("cluster_segments_test");
  for (const char* metric :
       {"events_total", "page_views", "conversions", "revenue", "unique_visitors"}) {
    request.add_metric_types(metric);
  }
  for (const analytics::Window window : kWindows) request.add_windows(window);
  for (const auto& [dimension, value] : filters) {
    analytics::DimensionFilter* filter = request.add_filters();
    filter->set_dimension(dimension);
    filter->set_value(value);
  }
  return request;
}

// One subscription kept open on a thread of its own, which notes the latest value of every
// metric and window as updates come, so that the test can poll them with a deadline. The call
// ends at its deadline, when the server ends it (the status is kept), or when this is destroyed
// (cancelled, then the thread joined). Thread-safe: the mutex guards what the thread notes.
class SegmentFollower {
 public:
  SegmentFollower(Stub& stub, analytics::SubscriptionRequest request) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    thread_ = std::thread([this, &stub, request = std::move(request)] { Run(stub, request); });
  }
  ~SegmentFollower() {
    context_.TryCancel();
    thread_.join();
  }
  SegmentFollower(const SegmentFollower&) = delete;
  SegmentFollower& operator=(const SegmentFollower&) = delete;

  // Whether the initial snapshot came (within `limit`); false when the call ended first.
  bool WaitStarted(std::chrono::milliseconds limit) {
    WaitFor(
        [&] {
          std::lock_guard lock(mutex_);
          return started_ || finished_;
        },
        limit);
    std::lock_guard lock(mutex_);
    return started_;
  }
  // How the call ended ("still open" while it has not), code and message.
  std::string Ending() const {
    std::lock_guard lock(mutex_);
    if (!finished_) return "still open";
    return "status " + std::to_string(status_.error_code()) + " " + status_.error_message();
  }
  bool finished() const {
    std::lock_guard lock(mutex_);
    return finished_;
  }
  // The latest value of `metric` in `window` (NaN before the first); the largest seen.
  double Value(const std::string& metric, analytics::Window window) const {
    std::lock_guard lock(mutex_);
    const auto found = values_.find({metric, window});
    return found == values_.end() ? std::numeric_limits<double>::quiet_NaN() : found->second;
  }
  double MaxSeen(const std::string& metric, analytics::Window window) const {
    std::lock_guard lock(mutex_);
    const auto found = max_.find({metric, window});
    return found == max_.end() ? std::numeric_limits<double>::quiet_NaN() : found->second;
  }

 private:
  void Run(Stub& stub, const analytics::SubscriptionRequest& request) {
    auto reader = stub.SubscribeMetrics(&context_, request);
    analytics::MetricUpdate update;
    while (reader->Read(&update)) {
      std::lock_guard lock(mutex_);
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) started_ = true;
      if (update.metric_type().empty() || !update.labels().empty()) continue;
      const std::pair<std::string, analytics::Window> key{update.metric_type(), update.window()};
      values_[key] = update.value();
      max_[key] = max_.count(key) == 0 ? update.value() : std::max(max_[key], update.value());
    }
    const grpc::Status status = reader->Finish();
    std::lock_guard lock(mutex_);
    status_ = status;
    finished_ = true;
  }

  grpc::ClientContext context_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, analytics::Window>, double> values_;  // guarded by mutex_
  std::map<std::pair<std::string, analytics::Window>, double> max_;     // guarded by mutex_
  bool started_ = false;                                                // guarded by mutex_
  bool finished_ = false;                                               // guarded by mutex_
  grpc::Status status_;                                                 // guarded by mutex_
  std::thread thread_;  // last: started once the rest is built
};

std::string WindowName(analytics::Window window) { return analytics::Window_Name(window); }

// "" when `values` (metric -> value) equal `want` exactly (revenue to the cent); else what
// differs.
template <typename ValueOf>
std::string Mismatch(const Counts& want, const ValueOf& value_of) {
  const double events = value_of("events_total");
  const double page_views = value_of("page_views");
  const double conversions = value_of("conversions");
  const double revenue = value_of("revenue");
  const bool exact = events == static_cast<double>(want.events) &&
                     page_views == static_cast<double>(want.page_views) &&
                     conversions == static_cast<double>(want.conversions) && !std::isnan(revenue) &&
                     std::llround(revenue * 100) == want.revenue_cents;
  if (exact) return "";
  char text[400];
  std::snprintf(text, sizeof text,
                "events %.0f of %llu, page views %.0f of %llu, conversions %.0f of %llu, "
                "revenue %.4f of %.2f",
                events, static_cast<unsigned long long>(want.events), page_views,
                static_cast<unsigned long long>(want.page_views), conversions,
                static_cast<unsigned long long>(want.conversions), revenue,
                static_cast<double>(want.revenue_cents) / 100);
  return text;
}

// "" when a subscriber's latest values equal the segment's answers in every checked window.
std::string SegmentMismatch(const SegmentFollower& follower, const Counts& want) {
  std::string out;
  for (const analytics::Window window : kWindows) {
    const std::string mismatch =
        Mismatch(want, [&](const std::string& metric) { return follower.Value(metric, window); });
    if (!mismatch.empty()) out += WindowName(window) + ": " + mismatch + "; ";
  }
  if (!out.empty() && follower.finished()) out += "the subscription ended: " + follower.Ending();
  return out;
}

// "" when GetMetrics (WINDOW_TOTAL, no filters) on a node equals the whole file.
std::string GlobalMismatch(Stub& stub, const Counts& want) {
  analytics::MetricsQuery query;
  for (const char* metric : {"events_total", "page_views", "conversions", "revenue"}) {
    query.add_metric_types(metric);
  }
  query.add_windows(analytics::WINDOW_TOTAL);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::MetricsSnapshot snapshot;
  const grpc::Status status = stub.GetMetrics(&context, query, &snapshot);
  if (!status.ok()) {
    return "GetMetrics: " + std::to_string(status.error_code()) + " " + status.error_message();
  }
  std::map<std::string, double> values;
  for (const analytics::MetricUpdate& update : snapshot.metrics()) {
    if (update.window() == analytics::WINDOW_TOTAL && update.labels().empty()) {
      values[update.metric_type()] = update.value();
    }
  }
  return Mismatch(want, [&](const std::string& metric) {
    const auto found = values.find(metric);
    return found == values.end() ? std::numeric_limits<double>::quiet_NaN() : found->second;
  });
}

// A subscription's refusal: its status once the server ends it (at most 10 s).
grpc::Status Refusal(Stub& stub, const analytics::SubscriptionRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reader = stub.SubscribeMetrics(&context, request);
  analytics::MetricUpdate update;
  while (reader->Read(&update)) {
  }
  return reader->Finish();
}

}  // namespace

TEST_CASE(
    "cluster live segments: filtered subscriptions on two nodes count the events ingested "
    "through the others, exact",
    "[cluster][binary][segments]") {
  NatsCluster nats;
  REQUIRE(nats.ok());
  TempDir dir;
  // About four minutes of traffic ending about two minutes ago: live (inside WINDOW_1H), never
  // ahead of the servers' clocks. The seed's file has conversions in both segments, one of
  // them a purchase that names no campaign (the campaign's by its session).
  constexpr int kEvents = 12'000;
  constexpr int kSeed = 42;
  const std::string file = Generate(dir.path(), kEvents, kSeed, NowMs() - 6 * kMinuteMs, 50);
  const Answers answers = CountFile(file);
  REQUIRE(answers.lines == static_cast<uint64_t>(kEvents));
  REQUIRE(answers.last_ms < NowMs());
  REQUIRE(answers.first_ms > NowMs() - 10 * kMinuteMs);
  REQUIRE(answers.country.conversions > 0);
  REQUIRE(answers.country.events < answers.all.events);
  REQUIRE(answers.campaign_device.conversions > 0);
  REQUIRE(answers.campaign_by_session > 0);

  constexpr int kPartitions = 8;
  constexpr int kLeaseMs = 2000;
  std::vector<std::vector<std::string>> args;
  std::vector<std::string> addresses;
  Nodes nodes;
  for (const char* name : {"node-a", "node-b", "node-c"}) {
    args.push_back({"--data-dir", dir.path() + "/" + name, "--listen", "127.0.0.1:0",
                    "--metrics-listen", "127.0.0.1:0", "--cluster", Join(nats.urls()),
                    "--cluster-node", name, "--cluster-partitions", std::to_string(kPartitions),
                    "--cluster-lease-ms", std::to_string(kLeaseMs), "--cluster-exchange-ms", "250",
                    "--tick-ms", "100"});
    nodes.push_back(StartNode(args.back()));
    addresses.push_back(nodes.back()->address());
  }
  std::vector<std::unique_ptr<Stub>> stubs;
  for (const std::string& address : addresses) {
    stubs.push_back(analytics::AnalyticsService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials())));
  }
  auto node_logs = [&] {
    std::string out;
    for (size_t i = 0; i < nodes.size(); ++i) {
      out += "node " + std::to_string(i) + " log:\n" + LogTail(*nodes[i]) + "\n";
    }
    return out;
  };
  // Every node owns some partitions: each one counts (and ships) part of every segment.
  auto owned = [&](size_t i) {
    return std::max(0.0, Scrape(*nodes[i], "analytics_cluster_partitions_owned"));
  };
  REQUIRE(WaitFor(
      [&] {
        return owned(0) + owned(1) + owned(2) == kPartitions && owned(0) > 0 && owned(1) > 0 &&
               owned(2) > 0;
      },
      std::chrono::seconds(30)));

  // Filters are checked as on a single node before anything is opened.
  {
    const grpc::Status status = Refusal(*stubs[1], SegmentRequest({{"city", "Berlin"}}));
    INFO("status " << status.error_code() << " " << status.error_message());
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(status.error_message(),
               Catch::StartsWith("filters[0].dimension: unknown dimension 'city'"));
  }

  constexpr size_t kNodeA = 0;
  constexpr size_t kNodeC = 2;
  SegmentFollower country(*stubs[kNodeA], SegmentRequest({{"country", kCountry}}));
  SegmentFollower campaign_device(
      *stubs[kNodeC], SegmentRequest({{"utm_campaign", kCampaign}, {"device", kDevice}}));
  {
    const bool started = country.WaitStarted(std::chrono::seconds(15));
    INFO("country = " << kCountry << " on node A: " << country.Ending() << "\n" << node_logs());
    REQUIRE(started);
  }
  {
    const bool started = campaign_device.WaitStarted(std::chrono::seconds(15));
    INFO("utm_campaign = " << kCampaign << " AND device = " << kDevice
                           << " on node C: " << campaign_device.Ending() << "\n"
                           << node_logs());
    REQUIRE(started);
  }
  const auto subscribed = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(kSegmentPropagation);
  // Nothing was sent yet: both segments are empty (no value yet, or 0).
  for (const analytics::Window window : kWindows) {
    INFO(WindowName(window));
    CHECK(!(country.Value("events_total", window) > 0));
    CHECK(!(campaign_device.Value("events_total", window) > 0));
  }

  // The file through nodes B and C only: node A's segment counts none of it itself.
  {
    const std::string summary_path = dir.path() + "/replay.summary.json";
    const std::string log_path = dir.path() + "/replay.reporter.log";
    const pid_t reporter = Spawn({RTA_EVENT_REPORTER_BINARY, "replay", file, "--server",
                                  Join({addresses[1], addresses[2]}), "--json", "--quiet"},
                                 summary_path, log_path);
    const int status = WaitChild(reporter, std::chrono::seconds(120), "event_reporter");
    INFO("event_reporter: " << Head(ReadFile(log_path)) << "\nsummary: " << ReadFile(summary_path));
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    CHECK(nlohmann::json::parse(ReadFile(summary_path)).value("accepted", 0ull) == answers.lines);
  }
  const auto acknowledged = std::chrono::steady_clock::now();

  // Polled every 200 ms (each round asks two nodes' GetMetrics), at most 30 s.
  std::string last;
  const auto mismatches = [&] {
    last.clear();
    if (const std::string m = SegmentMismatch(country, answers.country); !m.empty()) {
      last += "node A, country = " + std::string(kCountry) + ": " + m + "\n";
    }
    if (const std::string m = SegmentMismatch(campaign_device, answers.campaign_device);
        !m.empty()) {
      last += "node C, utm_campaign = " + std::string(kCampaign) + " AND device = " + kDevice +
              ": " + m + "\n";
    }
    for (const size_t i : {kNodeA, kNodeC}) {
      if (const std::string m = GlobalMismatch(*stubs[i], answers.all); !m.empty()) {
        last += "node " + std::to_string(i) + " GetMetrics (no filters): " + m + "\n";
      }
    }
    return last;
  };
  bool exact = false;
  for (const auto deadline = acknowledged + std::chrono::seconds(30);;) {
    exact = mismatches().empty();
    if (exact || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::printf(
      "cluster segments: both segments %s %lld ms after the replay's last acknowledgement "
      "(%lld ms after subscribing; %d events, %llu in country = %s, %llu in the campaign on %s)\n",
      exact ? "exact" : "still not exact", MsSince(acknowledged), MsSince(subscribed), kEvents,
      static_cast<unsigned long long>(answers.country.events), kCountry,
      static_cast<unsigned long long>(answers.campaign_device.events), kDevice);
  INFO("last answers:\n" << last << node_logs());
  REQUIRE(exact);

  for (const analytics::Window window : kWindows) {
    INFO(WindowName(window));
    // Never more than the segment on the way (no update carried another segment's or the
    // global windows' count, nor a delta twice).
    CHECK(country.MaxSeen("events_total", window) == static_cast<double>(answers.country.events));
    CHECK(campaign_device.MaxSeen("events_total", window) ==
          static_cast<double>(answers.campaign_device.events));
    // Unique visitors: a HyperLogLog of precision 14, within its bound.
    CHECK(
        country.Value("unique_visitors", window) ==
        Approx(static_cast<double>(answers.country.visitors.size())).epsilon(HyperLogLogBound(14)));
    CHECK(campaign_device.Value("unique_visitors", window) ==
          Approx(static_cast<double>(answers.campaign_device.visitors.size()))
              .epsilon(HyperLogLogBound(14)));
  }
  // Still exact a few exchanges later: a late duplicate shipment would show now.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  CHECK(mismatches() == "");
}
