// Durability of the real binary (issue 11): kill -9 while event_reporter replays a file, a
// SIGTERM restart under traffic, a torn log tail, a flipped byte in the middle of the log, and a
// full disk (RLIMIT_FSIZE through prlimit). Real files in a temporary data directory, loopback
// only, every loop bounded in count and time.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>
#include <vector>

#include "analytics.grpc.pb.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace {

using rta::testing::DescribeWaitStatus;
using rta::testing::HttpGet;
using rta::testing::MakeEvent;
using rta::testing::NowMs;
using rta::testing::PrometheusValue;
using rta::testing::ServerProcess;
using rta::testing::WaitFor;

using rta::testing::TempDir;

std::unique_ptr<analytics::AnalyticsService::Stub> StubFor(const std::string& address) {
  return analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

// Every value of a GetMetrics answer by "metric window labels", except the rates over the last
// seconds (events_per_second*), which move with the clock by design.
std::map<std::string, double> AllMetrics(const std::string& address) {
  auto stub = StubFor(address);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::MetricsQuery query;
  rta::testing::AddEveryWindow(query.mutable_windows());
  analytics::MetricsSnapshot snapshot;
  const grpc::Status status = stub->GetMetrics(&context, query, &snapshot);
  REQUIRE(status.ok());
  std::map<std::string, double> values;
  for (const analytics::MetricUpdate& update : snapshot.metrics()) {
    if (update.metric_type().rfind("events_per_second", 0) == 0) continue;
    std::string key = update.metric_type() + " " + std::to_string(update.window());
    for (const auto& [name, value] :
         std::map<std::string, std::string>(update.labels().begin(), update.labels().end())) {
      key += " " + name + "=" + value;
    }
    for (const analytics::TopEntry& entry : update.top()) {
      values[key + " top:" + entry.key()] = static_cast<double>(entry.count());
    }
    values[key] = update.value();
  }
  return values;
}

double Metric(const std::string& address, const std::string& name, analytics::Window window) {
  const auto values = AllMetrics(address);
  const auto it = values.find(name + " " + std::to_string(window));
  return it == values.end() ? NAN : it->second;
}

// The per-second history a dashboard joining now gets for events_total (WINDOW_TOTAL): second
// -> value.
std::map<int64_t, double> History(const std::string& address) {
  auto stub = StubFor(address);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  request.set_history_seconds(600);
  auto reader = stub->SubscribeMetrics(&context, request);
  std::map<int64_t, double> history;
  analytics::MetricUpdate update;
  while (reader->Read(&update)) {
    if (update.kind() == analytics::UPDATE_KIND_HISTORY)
      history[update.timestamp()] = update.value();
    if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) break;  // history comes before
  }
  context.TryCancel();
  return history;
}

double Scrape(const ServerProcess& server, const std::string& series) {
  return PrometheusValue(HttpGet(server.metrics_port(), "/metrics"), series);
}

analytics::PublishRequest Batch(const std::string& producer, uint64_t sequence, int events,
                                int64_t now_ms) {
  analytics::PublishRequest request;
  request.set_producer_id(producer);
  request.set_sequence(sequence);
  static const char* const kCountries[] = {"DE", "FR", "US", "JP", "BR"};
  static const char* const kDevices[] = {"desktop", "mobile", "tablet"};
  for (int i = 0; i < events; ++i) {
    const int n = static_cast<int>(sequence) * 1000 + i;
    analytics::EventData event =
        MakeEvent(producer + "-" + std::to_string(sequence) + "-" + std::to_string(i),
                  n % 9 == 0 ? "purchase" : (n % 4 == 0 ? "page_load" : "page_view"), now_ms,
                  "v" + std::to_string(n % 97), "s" + std::to_string(n % 41));
    event.set_page("/p/" + std::to_string(n % 13));
    event.set_referrer(n % 2 == 0 ? "google.com" : "news.example");
    event.set_utm_campaign("c" + std::to_string(n % 5));
    event.set_country(kCountries[n % 5]);
    event.set_device(kDevices[n % 3]);
    event.set_value(n % 9 == 0 ? 9.5 + n % 7 : (n % 4 == 0 ? 80 + n % 300 : 0));
    *request.add_events() = std::move(event);
  }
  return request;
}

// One batch on its own PublishEvents stream: its ack, or the stream's failure.
grpc::Status PublishOne(const std::string& address, const analytics::PublishRequest& batch,
                        analytics::PublishAck* ack, int deadline_s = 10) {
  auto stub = StubFor(address);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(deadline_s));
  auto stream = stub->PublishEvents(&context);
  stream->Write(batch);
  stream->WritesDone();
  bool acked = stream->Read(ack);
  analytics::PublishAck extra;
  while (stream->Read(&extra)) {
  }
  grpc::Status status = stream->Finish();
  if (status.ok() && !acked) return {grpc::StatusCode::INTERNAL, "no ack"};
  return status;
}

// The log's segment files, oldest first.
std::vector<std::filesystem::path> Segments(const std::string& data_dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir + "/log")) {
    if (entry.path().extension() == ".log") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Offsets of the records of a segment file (the framing of server/storage/record_format.h:
// a 24-byte header whose bytes 4..7 are the payload length, then the payload).
std::vector<uint64_t> RecordOffsets(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::vector<uint64_t> offsets;
  for (uint64_t at = 0; at + 24 <= bytes.size();) {
    uint32_t length = 0;
    std::memcpy(&length, bytes.data() + at + 4, 4);
    if (at + 24 + length > bytes.size()) break;
    offsets.push_back(at);
    at += 24 + length;
  }
  return offsets;
}

std::vector<std::string> DurableArgs(const std::string& data_dir,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--data-dir",
                                   data_dir,
                                   "--tick-ms",
                                   "100",
                                   "--metrics-listen",
                                   "127.0.0.1:0",
                                   "--dedupe-capacity-log2",
                                   "16"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

TEST_CASE("a SIGTERM restart under steady traffic keeps every metric of every window",
          "[server][binary][durability]") {
  TempDir dir;
  std::string address;
  std::map<std::string, double> before;
  std::map<int64_t, double> history_before;
  {
    ServerProcess server(DurableArgs(dir.path()));
    REQUIRE(server.listening());
    address = server.address();
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> acked{0};
    std::thread traffic([&] {
      const int64_t now = NowMs();
      for (uint64_t s = 1; s <= 200 && !stop.load(); ++s) {
        analytics::PublishAck ack;
        if (PublishOne(address, Batch("steady", s, 50, now - 20'000 + static_cast<int64_t>(s) * 50),
                       &ack)
                .ok()) {
          acked += ack.accepted();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    stop = true;
    traffic.join();
    REQUIRE(acked.load() > 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a tick folds the last ones in
    before = AllMetrics(address);
    CHECK(before.at("events_total 4") == static_cast<double>(acked.load()));
    history_before = History(address);
    CHECK(history_before.size() >= 2);
    server.Signal(SIGTERM);
    const auto status = server.WaitForExit(std::chrono::seconds(20));
    REQUIRE(status);
    CHECK(DescribeWaitStatus(*status) == "exit 0");
    CHECK_THAT(server.Log(), Catch::Contains("event=checkpoint_at_shutdown"));
  }
  ServerProcess server(DurableArgs(dir.path()));
  REQUIRE(server.listening());
  CHECK_THAT(server.Log(), Catch::Contains("event=recovered checkpoint=yes"));
  const auto after = AllMetrics(server.address());
  // Every series (all windows, top-k entries, dimension labels), value for value; sketches are
  // restored as they were, so unique visitors and quantiles are identical too.
  CHECK(after.size() == before.size());
  size_t differences = 0;
  for (const auto& [key, value] : before) {
    const auto it = after.find(key);
    if (it == after.end() || std::abs(it->second - value) > 1e-9 * std::max(1.0, std::abs(value))) {
      ++differences;
      UNSCOPED_INFO(
          key << ": before " << value << ", after "
              << (it == after.end() ? std::string("(missing)") : std::to_string(it->second)));
    }
  }
  CHECK(differences == 0);
  // The dashboards' per-second history of before the restart is still there, value for value.
  const auto history_after = History(server.address());
  for (const auto& [second, value] : history_before) {
    INFO("second " << second);
    REQUIRE(history_after.count(second) == 1);
    CHECK(history_after.at(second) == value);
  }
}

TEST_CASE(
    "kill -9 three times while event_reporter replays a file: exact counts at the end, live and in "
    "the history",
    "[server][binary][durability][kill]") {
  // 1,000,000 events in release builds (the recipe); fewer under the sanitizers, where
  // the same work is 5-20x slower (RTA_KILL_LOOP_EVENTS).
  const char* env = std::getenv("RTA_KILL_LOOP_EVENTS");
  const int events = env != nullptr ? std::atoi(env) : 1'000'000;
  TempDir dir;
  const std::string file = dir.path() + "/traffic.jsonl";
  {
    const std::string command = std::string(RTA_EVENT_REPORTER_BINARY) + " generate --events " +
                                std::to_string(events) + " --rate 2000 --seed 11 --output " + file +
                                " --quiet";
    REQUIRE(std::system(command.c_str()) == 0);
  }
  // The file's exact answers.
  uint64_t lines = 0, page_views = 0, conversions = 0;
  double revenue = 0;
  int64_t revenue_units = 0;  // 1e-4, as the history keeps it
  int64_t first_ms = INT64_MAX;
  {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      const auto event = nlohmann::json::parse(line);
      ++lines;
      const std::string type = event.value("event_type", "");
      if (type == "page_view") ++page_views;
      if (type == "purchase" || type == "signup") ++conversions;
      if (type == "purchase") {
        revenue += event.value("value", 0.0);
        revenue_units += std::llround(event.value("value", 0.0) * 1e4);
      }
      first_ms = std::min(first_ms, event.value("timestamp_ms", int64_t{0}));
    }
  }
  REQUIRE(lines == static_cast<uint64_t>(events));
  const std::string data_dir = dir.path() + "/data";
  // The first start binds a port the kernel picks (no other process can take it first); the
  // restarts ask for the same one, as a real client's endpoint.
  auto args = DurableArgs(data_dir, {"--listen", "127.0.0.1:0"});
  auto server = std::make_unique<ServerProcess>(args);
  REQUIRE(server->listening());
  const std::string address = server->address();
  args = DurableArgs(data_dir, {"--listen", address});

  const std::string summary_path = dir.path() + "/summary.json";
  const pid_t reporter = fork();
  REQUIRE(reporter >= 0);
  if (reporter == 0) {
    const int out = open(summary_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    const int err =
        open((dir.path() + "/reporter.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(err, 2);
    execl(RTA_EVENT_REPORTER_BINARY, "event_reporter", "replay", file.c_str(), "--server",
          address.c_str(), "--json", "--quiet", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::mt19937 rng(std::random_device{}());
  int kills = 0;
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 1500)(rng)));
    if (waitpid(reporter, nullptr, WNOHANG) != 0) break;  // done already: nothing to kill into
    server->Signal(SIGKILL);
    REQUIRE(server->WaitForExit(std::chrono::seconds(10)));
    ++kills;
    server = std::make_unique<ServerProcess>(args);
    REQUIRE(server->listening());
  }
  // Bounded: the reporter has its own give-up; this is the test's own limit.
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(600);
  while (waitpid(reporter, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(reporter, SIGKILL);
      waitpid(reporter, &status, 0);
      FAIL("event_reporter did not finish within 600 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::ifstream reporter_log(dir.path() + "/reporter.log");
  INFO("reporter log: " << std::string((std::istreambuf_iterator<char>(reporter_log)), {}));
  INFO("kills: " << kills);
  REQUIRE(DescribeWaitStatus(status) == "exit 0");
  std::ifstream summary_file(summary_path);
  const auto summary = nlohmann::json::parse(summary_file);
  CHECK(summary.value("accepted", 0ull) == lines);
  CHECK(summary.value("failed", 0ull) == 0);
  // The server's numbers: nothing lost, nothing counted twice.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto values = AllMetrics(server->address());
  CHECK(values.at("events_total 4") == static_cast<double>(lines));
  CHECK(values.at("page_views 4") == static_cast<double>(page_views));
  CHECK(values.at("conversions 4") == static_cast<double>(conversions));
  CHECK(std::abs(values.at("revenue 4") - revenue) < 1e-6 * std::max(1.0, revenue));
  CHECK(kills == 3);

  // The history, fed from the same log through the kills: every event exactly once (the writer
  // may still be folding the last records in the background).
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials()));
  analytics::RangeQuery query;
  query.set_from_ms(first_ms - first_ms % 86'400'000);
  query.set_to_ms(NowMs() + 86'400'000);
  for (const char* metric : {"events_total", "page_views", "conversions", "revenue"}) {
    query.add_metrics(metric);
  }
  analytics::RangeResult history;
  const auto history_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    grpc::ClientContext context;
    history.Clear();
    const grpc::Status answer = stub->QueryMetrics(&context, query, &history);
    if (answer.ok() && history.totals(0) >= static_cast<double>(lines)) break;
    if (std::chrono::steady_clock::now() > history_deadline) {
      FAIL("the history did not reach " << lines << " events: " << history.ShortDebugString() << " "
                                        << answer.error_message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  CHECK(history.totals(0) == static_cast<double>(lines));
  CHECK(history.totals(1) == static_cast<double>(page_views));
  CHECK(history.totals(2) == static_cast<double>(conversions));
  CHECK(std::llround(history.totals(3) * 1e4) == revenue_units);
}

TEST_CASE("AnalyzeSession's signals survive kill -9 and a SIGTERM restart and count once",
          "[server][binary][durability]") {
  TempDir dir;
  // The first start binds a port the kernel picks; the restarts ask for the same one.
  auto args = DurableArgs(dir.path(), {"--listen", "127.0.0.1:0"});
  auto server = std::make_unique<ServerProcess>(args);
  REQUIRE(server->listening());
  const std::string address = server->address();
  args = DurableArgs(dir.path(), {"--listen", address});
  {
    auto stub = StubFor(address);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto stream = stub->AnalyzeSession(&context);
    // Two sessions each click one target three times within a second: a rage click each.
    const int64_t now = NowMs();
    for (const char* session : {"r1", "r2"}) {
      for (int i = 0; i < 3; ++i) {
        analytics::UserAction action;
        action.set_session_id(session);
        action.set_action_type("click");
        action.set_target("#buy");
        action.set_timestamp_ms(now + i * 100);
        REQUIRE(stream->Write(action));
      }
    }
    analytics::AnalysisResult result;
    for (int i = 0; i < 6; ++i) REQUIRE(stream->Read(&result));
    stream->WritesDone();
    REQUIRE(stream->Finish().ok());
  }
  CHECK(WaitFor([&] { return rta::testing::MetricTotal(address, "rage_clicks") == 2; }));
  // Two records (the signals; no event was sent), both on disk before the kill.
  CHECK(WaitFor([&] { return Scrape(*server, "analytics_log_durable_lsn") == 2; }));
  CHECK(Scrape(*server, "analytics_log_records_total") == 2);

  server->Signal(SIGKILL);
  REQUIRE(server->WaitForExit(std::chrono::seconds(10)));
  server = std::make_unique<ServerProcess>(args);
  REQUIRE(server->listening());
  CHECK_THAT(server->Log(), Catch::Contains("checkpoint=none") &&
                                Catch::Contains("replayed_records=2") &&
                                Catch::Contains("replayed_signals=2"));
  CHECK(rta::testing::MetricTotal(address, "rage_clicks") == 2);
  CHECK(rta::testing::MetricTotal(address, "events_total") == 0);

  // At SIGTERM the checkpoint takes them; the next start replays nothing and still has two.
  server->Signal(SIGTERM);
  const auto status = server->WaitForExit(std::chrono::seconds(20));
  REQUIRE(status);
  CHECK(DescribeWaitStatus(*status) == "exit 0");
  server = std::make_unique<ServerProcess>(args);
  REQUIRE(server->listening());
  CHECK_THAT(server->Log(),
             Catch::Contains("checkpoint=yes") && Catch::Contains("replayed_signals=0"));
  CHECK(rta::testing::MetricTotal(address, "rage_clicks") == 2);
}

TEST_CASE("a torn last record is truncated at start, logged and counted, and the rest is intact",
          "[server][binary][durability]") {
  TempDir dir;
  {
    ServerProcess server(DurableArgs(dir.path()));
    REQUIRE(server.listening());
    const int64_t now = NowMs();
    for (uint64_t s = 1; s <= 10; ++s) {
      analytics::PublishAck ack;
      REQUIRE(PublishOne(server.address(), Batch("torn", s, 10, now), &ack).ok());
    }
    server.Signal(SIGKILL);  // no shutdown checkpoint: the log holds everything
    REQUIRE(server.WaitForExit(std::chrono::seconds(10)));
  }
  const auto segments = Segments(dir.path());
  REQUIRE_FALSE(segments.empty());
  const auto size = std::filesystem::file_size(segments.back());
  std::filesystem::resize_file(segments.back(), size - 7);  // the last record loses its end
  ServerProcess server(DurableArgs(dir.path()));
  REQUIRE(server.listening());
  CHECK_THAT(server.Log(), Catch::Contains("event=event_log_repaired"));
  CHECK(Scrape(server, "analytics_log_torn_tail_bytes_total") > 0);
  CHECK(Metric(server.address(), "events_total", analytics::WINDOW_TOTAL) == 90);
  // The torn batch was never durable: its re-send is new, and then counted once.
  analytics::PublishAck ack;
  REQUIRE(PublishOne(server.address(), Batch("torn", 10, 10, NowMs()), &ack).ok());
  CHECK_FALSE(ack.duplicate_batch());
  CHECK(ack.accepted() == 10);
  CHECK(WaitFor(
      [&] { return Metric(server.address(), "events_total", analytics::WINDOW_TOTAL) == 100; }));
}

TEST_CASE(
    "a flipped byte in the middle of the log stops the start with segment and offset, "
    "unless --skip-corrupt-records",
    "[server][binary][durability]") {
  TempDir dir;
  {
    ServerProcess server(DurableArgs(dir.path()));
    REQUIRE(server.listening());
    const int64_t now = NowMs();
    for (uint64_t s = 1; s <= 10; ++s) {
      analytics::PublishAck ack;
      REQUIRE(PublishOne(server.address(), Batch("flip", s, 10, now), &ack).ok());
    }
    server.Signal(SIGKILL);
    REQUIRE(server.WaitForExit(std::chrono::seconds(10)));
  }
  const auto segments = Segments(dir.path());
  REQUIRE(segments.size() == 1);
  const auto offsets = RecordOffsets(segments.front());
  REQUIRE(offsets.size() == 10);
  {
    std::fstream file(segments.front(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(offsets[4] + 24 + 40));
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5A);
    file.seekp(static_cast<std::streamoff>(offsets[4] + 24 + 40));
    file.write(&byte, 1);
  }
  {
    ServerProcess refused(DurableArgs(dir.path()));
    CHECK_FALSE(refused.listening());
    const auto status = refused.WaitForExit(std::chrono::seconds(10));
    REQUIRE(status);
    CHECK(DescribeWaitStatus(*status) == "exit 1");
    CHECK_THAT(refused.Log(), Catch::Contains(segments.front().filename().string()));
    CHECK_THAT(refused.Log(), Catch::Contains(std::to_string(offsets[4])));
  }
  ServerProcess server(DurableArgs(dir.path(), {"--skip-corrupt-records", "1"}));
  REQUIRE(server.listening());
  CHECK(Scrape(server, "analytics_log_corrupt_records_skipped_total") == 1);
  CHECK(Metric(server.address(), "events_total", analytics::WINDOW_TOTAL) == 90);
}

TEST_CASE(
    "a full disk: ingest gets UNAVAILABLE, reads keep working, and ingest resumes by "
    "itself when space returns, and nothing acknowledged is lost",
    "[server][binary][durability][full_disk]") {
  TempDir dir;
  ServerProcess server(DurableArgs(dir.path(), {"--log-segment-bytes", "1048576"}));
  REQUIRE(server.listening());
  // The process may not grow any file past 400 KB: the first segment hits it (EFBIG).
  const std::string limit = "prlimit --pid " + std::to_string(server.pid()) + " --fsize=";
  REQUIRE(std::system((limit + "400000:unlimited").c_str()) == 0);  // soft:hard
  const int64_t now = NowMs();
  uint64_t sequence = 1;
  uint64_t acknowledged = 0;
  grpc::Status refusal;
  for (; sequence <= 500; ++sequence) {
    analytics::PublishAck ack;
    refusal = PublishOne(server.address(), Batch("full", sequence, 50, now), &ack, 3);
    if (!refusal.ok()) break;
    acknowledged += ack.accepted();
  }
  INFO("refused at batch " << sequence << ": " << refusal.error_message());
  REQUIRE(sequence <= 500);
  CHECK((refusal.error_code() == grpc::StatusCode::UNAVAILABLE ||
         refusal.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED));
  CHECK(WaitFor([&] { return Scrape(server, "analytics_log_writable") == 0; }));
  analytics::PublishAck ack;
  const grpc::Status while_full =
      PublishOne(server.address(), Batch("full", sequence, 50, now), &ack, 3);
  CHECK(while_full.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(while_full.error_message(), Catch::Contains("event log"));
  // Reads keep working: every acknowledged event is counted.
  CHECK(Metric(server.address(), "events_total", analytics::WINDOW_TOTAL) >=
        static_cast<double>(acknowledged));
  CHECK_THAT(server.Log(), Catch::Contains("event=event_log_not_writable"));

  REQUIRE(std::system((limit + "unlimited:unlimited").c_str()) == 0);
  CHECK(WaitFor([&] { return Scrape(server, "analytics_log_writable") == 1; },
                std::chrono::seconds(10)));
  // The refused batch again (the same sequence), then five more: all acknowledged.
  for (const uint64_t end = sequence + 5; sequence <= end; ++sequence) {
    REQUIRE(PublishOne(server.address(), Batch("full", sequence, 50, now), &ack).ok());
    acknowledged += ack.accepted();
  }
  // GetMetrics answers from the last tick (100 ms): wait for the one after the last ack.
  const double expected = static_cast<double>((sequence - 1) * 50);
  CHECK(WaitFor([&] {
    return Metric(server.address(), "events_total", analytics::WINDOW_TOTAL) == expected;
  }));
  const double total = Metric(server.address(), "events_total", analytics::WINDOW_TOTAL);
  server.Signal(SIGTERM);
  REQUIRE(server.WaitForExit(std::chrono::seconds(20)));
  ServerProcess restarted(DurableArgs(dir.path()));
  REQUIRE(restarted.listening());
  CHECK(Metric(restarted.address(), "events_total", analytics::WINDOW_TOTAL) == total);
}
