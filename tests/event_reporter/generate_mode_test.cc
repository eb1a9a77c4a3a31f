// generate mode: where --output puts the traffic in time (ending at the moment of generation,
// or at --start-ms), what it refuses, and the README's generate-then-replay pair run as pasted
// against the real server binary.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "tests/event_reporter/cli_test_util.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"

using rta::reporter::testing::Answer;
using rta::reporter::testing::CliRun;
using rta::reporter::testing::FileAnswers;
using rta::reporter::testing::Run;
using rta::reporter::testing::RunShell;
using rta::reporter::testing::RunWithStdout;
using rta::reporter::testing::ShellRun;
using rta::reporter::testing::TempPath;
using rta::reporter::testing::Total;
using rta::testing::ServerHarness;
using rta::testing::ServerProcess;

namespace {

std::vector<nlohmann::json> ReadEvents(const std::string& path) {
  std::vector<nlohmann::json> events;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) events.push_back(nlohmann::json::parse(line));
  return events;
}

// "100,000 sent, 5 accepted" -> "100000 sent 5 accepted": the summaries, for sscanf.
std::string WithoutCommas(const std::string& text) {
  std::string plain;
  for (const char c : text) {
    if (c != ',') plain += c;
  }
  return plain;
}

}  // namespace

TEST_CASE("generate --output: the traffic ends at the moment of generation",
          "[reporter][generate]") {
  const std::string path = TempPath("ends-now.jsonl");
  const int64_t before = rta::testing::NowMs();
  // 3,000 events at 2/s: about 25 minutes of event time, all of it in the past.
  const CliRun run = Run(
      {"generate", "--events", "3000", "--rate", "2", "--seed", "5", "--output", path, "--json"});
  const int64_t after = rta::testing::NowMs();
  INFO(run.err);
  REQUIRE(run.status == 0);
  const std::vector<nlohmann::json> events = ReadEvents(path);
  REQUIRE(events.size() == 3'000);
  int64_t previous = 0;
  for (const nlohmann::json& event : events) {
    const int64_t time = event.at("timestamp_ms");
    REQUIRE(time >= previous);
    previous = time;
  }
  const int64_t first = events.front().at("timestamp_ms");
  const int64_t last = events.back().at("timestamp_ms");
  CHECK(last >= before);
  CHECK(last <= after);
  // The span is the generator's: 3,000 events at 2/s, Poisson, so within 15% of 1,500 s.
  CHECK((last - first) / 1000.0 == Approx(1'500).epsilon(0.15));
  const auto summary = run.Summary();
  CHECK(summary["first_event_ms"] == first);
  CHECK(summary["last_event_ms"] == last);
  CHECK(summary["exact"]["events"] == 3'000);

  SECTION("the same seed again: the same events, moved to the new end") {
    const std::string again = TempPath("ends-now-again.jsonl");
    REQUIRE(Run({"generate", "--events", "3000", "--rate", "2", "--seed", "5", "--output", again})
                .status == 0);
    const std::vector<nlohmann::json> second = ReadEvents(again);
    REQUIRE(second.size() == events.size());
    const int64_t shift = second.back().at("timestamp_ms").get<int64_t>() - last;
    for (size_t i = 0; i < events.size(); ++i) {
      nlohmann::json moved = events[i];
      moved["timestamp_ms"] = moved["timestamp_ms"].get<int64_t>() + shift;
      REQUIRE(second[i] == moved);
    }
    std::remove(again.c_str());
  }
  SECTION("replayed at once, a fresh server accepts every event") {
    ServerHarness server;
    const FileAnswers answers = Answer(path);
    const CliRun replay = Run({"replay", path, "--server", server.address(), "--json"});
    INFO(replay.err);
    CHECK(replay.status == 0);
    CHECK(replay.Summary()["accepted"] == 3'000);
    CHECK(replay.Summary()["rejected"] == 0);
    CHECK(Total(server, "events_total") == 3'000);
    CHECK(Total(server, "page_views") == answers.page_views);
  }
  SECTION("--duration: the same, bounded by event time") {
    const std::string timed = TempPath("duration.jsonl");
    const int64_t start = rta::testing::NowMs();
    REQUIRE(Run({"generate", "--duration", "600", "--rate", "5", "--output", timed}).status == 0);
    const std::vector<nlohmann::json> by_time = ReadEvents(timed);
    REQUIRE(by_time.size() > 2'000);  // about 3,000
    const int64_t end = by_time.back().at("timestamp_ms");
    CHECK(end >= start);
    CHECK(end <= rta::testing::NowMs());
    CHECK(end - by_time.front().at("timestamp_ms").get<int64_t>() < 600'000);
    std::remove(timed.c_str());
  }
  std::remove(path.c_str());
}

TEST_CASE("generate --start-ms places the first event, and says when a replay would be refused",
          "[reporter][generate]") {
  const std::string path = TempPath("placed.jsonl");
  constexpr int64_t kStart = 1'764'000'000'000;  // 2025-11-24T16:00:00Z, long past
  const std::vector<std::string> args = {"generate",
                                         "--events",
                                         "500",
                                         "--rate",
                                         "10",
                                         "--seed",
                                         "9",
                                         "--output",
                                         path,
                                         "--start-ms",
                                         std::to_string(kStart)};
  const CliRun run = Run(args);
  REQUIRE(run.status == 0);
  const std::vector<nlohmann::json> events = ReadEvents(path);
  REQUIRE(events.size() == 500);
  CHECK(events.front().at("timestamp_ms") >= kStart);
  CHECK(events.front().at("timestamp_ms") < kStart + 5'000);
  CHECK_THAT(run.out, Catch::Contains("placed by --start-ms"));
  CHECK_THAT(run.err, Catch::Contains("note: the events run from 2025-11-24T16:00:00"));
  CHECK_THAT(run.err, Catch::Contains("older ones go to its history only"));
  // Placed events are fully determined by the flags.
  std::ifstream first_file(path);
  const std::string first_text((std::istreambuf_iterator<char>(first_file)), {});
  REQUIRE(Run(args).status == 0);
  std::ifstream second_file(path);
  CHECK(std::string((std::istreambuf_iterator<char>(second_file)), {}) == first_text);
  // A span too long to place by itself is fine when placed by hand.
  const CliRun long_one = Run({"generate", "--events", "200000", "--rate", "50", "--output", path,
                               "--start-ms", std::to_string(kStart)});
  CHECK(long_one.status == 0);
  std::remove(path.c_str());
}

TEST_CASE("generate refuses what would not work, before writing anything",
          "[reporter][generate][cli]") {
  const std::string path = TempPath("refused.jsonl");
  std::remove(path.c_str());
  SECTION("a span the server would refuse when replayed") {
    const CliRun run = Run({"generate", "--events", "1000000", "--output", path});
    CHECK(run.status == 2);
    CHECK_THAT(run.err, Catch::Contains("--events 1,000,000 at --rate 50 span about 5:33:20"));
    CHECK_THAT(run.err, Catch::Contains("--rate 304 or more"));
    CHECK_THAT(run.err, Catch::Contains("--start-ms"));
    const CliRun timed = Run({"generate", "--duration", "4000", "--output", path});
    CHECK(timed.status == 2);
    CHECK_THAT(timed.err, Catch::Contains("Keep --duration at most 3300"));
  }
  SECTION("--start-ms in seconds, or out of range") {
    const CliRun seconds =
        Run({"generate", "--events", "5", "--output", path, "--start-ms", "1764000000"});
    CHECK(seconds.status == 2);
    CHECK_THAT(seconds.err, Catch::Contains("--start-ms: expected Unix milliseconds") &&
                                Catch::Contains("(seconds? multiply by 1000)"));
    CHECK(Run({"generate", "--events", "5", "--output", path, "--start-ms", "-1"}).status == 2);
    CHECK(Run({"generate", "--events", "5", "--output", path, "--start-ms", "soon"}).status == 2);
  }
  SECTION("--start-ms without --output") {
    const CliRun live = Run({"generate", "--events", "5", "--start-ms", "1764000000000"});
    CHECK(live.status == 2);
    CHECK_THAT(live.err, Catch::Contains("--start-ms places the events of --output"));
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("generate fails with a message when its output cannot be written",
          "[reporter][generate][cli]") {
  // /dev/full takes the open and fails every write with ENOSPC, as a full disk does.
  SECTION("--output FILE") {
    const CliRun run = Run({"generate", "--events", "20000", "--output", "/dev/full"});
    CHECK(run.status == 1);
    CHECK_THAT(run.err, Catch::Contains("writing /dev/full failed"));
  }
  SECTION("--output - to a stdout that fails") {
    FILE* full = std::fopen("/dev/full", "w");
    REQUIRE(full != nullptr);
    std::istringstream no_input;
    const CliRun run =
        RunWithStdout({"generate", "--events", "20000", "--output", "-"}, no_input, full);
    std::fclose(full);
    CHECK(run.status == 1);
    CHECK_THAT(run.err, Catch::Contains("writing stdout failed"));
  }
}

#if defined(RTA_EVENT_REPORTER_BINARY) && defined(RTA_ANALYTICS_SERVER_BINARY)
TEST_CASE("README: generate --output then replay, as pasted, against the real server",
          "[reporter][generate][binary]") {
  // The two commands of the README in a scratch directory, with the real binaries on PATH.
  // The only change: --server names the test's server (the documented default,
  // 127.0.0.1:50051, is not ours to use in a test).
  ServerProcess server({}, RTA_ANALYTICS_SERVER_BINARY);
  INFO(server.Log());
  REQUIRE(server.listening());
  const std::string directory = TempPath("readme-pair");
  std::filesystem::create_directories(directory);
  // Removed however the test ends (a failed REQUIRE throws past the end of the test).
  struct RemoveOnExit {
    std::string path;
    ~RemoveOnExit() { std::filesystem::remove_all(path); }
  } remove_directory{directory};
  const std::string bin = std::filesystem::path(RTA_EVENT_REPORTER_BINARY).parent_path();
  const ShellRun generate =
      RunShell("event_reporter generate --events 100000 --seed 7 --output traffic.jsonl", directory,
               bin, std::chrono::seconds(60));
  INFO(generate.out << generate.err);
  REQUIRE(generate.status == 0);
  const ShellRun replay =
      RunShell("event_reporter replay traffic.jsonl --server " + server.address(), directory, bin,
               std::chrono::seconds(60));
  INFO(replay.out << replay.err);
  REQUIRE(replay.status == 0);

  // What the generator printed: "generate: wrote 100,000 events to traffic.jsonl (seed 7):
  // 40,502 page views, 880 conversions, revenue 41325.09, 11,856 visitors".
  unsigned long long events = 0, page_views = 0, conversions = 0;
  double revenue = -1;
  REQUIRE(std::sscanf(WithoutCommas(generate.out).c_str(),
                      "generate: wrote %llu events to traffic.jsonl (seed 7): %llu page views "
                      "%llu conversions revenue %lf",
                      &events, &page_views, &conversions, &revenue) == 4);
  CHECK(events == 100'000);
  // ... and the replay's own count: every event accepted.
  unsigned long long sent = 0, accepted = 0, duplicates = 0, rejected = 0, failed = 0;
  REQUIRE(std::sscanf(WithoutCommas(replay.out).c_str(),
                      "replay: %llu sent %llu accepted %llu duplicates %llu rejected %llu failed",
                      &sent, &accepted, &duplicates, &rejected, &failed) == 5);
  CHECK(sent == events);
  CHECK(accepted == events);
  CHECK(rejected == 0);
  CHECK(failed == 0);

  // The server's own answer, once a tick (1 s by default) has folded the events in.
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  std::map<std::string, double> totals;
  const auto read_totals = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    analytics::MetricsQuery query;
    for (const char* name : {"events_total", "page_views", "conversions", "revenue"}) {
      query.add_metric_types(name);
    }
    query.add_windows(analytics::WINDOW_TOTAL);
    analytics::MetricsSnapshot snapshot;
    if (!stub->GetMetrics(&context, query, &snapshot).ok()) return false;
    for (const analytics::MetricUpdate& update : snapshot.metrics()) {
      totals[update.metric_type()] = update.value();
    }
    return totals["events_total"] == static_cast<double>(events);
  };
  CHECK(rta::testing::WaitFor(read_totals, std::chrono::seconds(10)));
  CHECK(totals["events_total"] == static_cast<double>(events));
  CHECK(totals["page_views"] == static_cast<double>(page_views));
  CHECK(totals["conversions"] == static_cast<double>(conversions));
  // Printed with two decimals; the server's sum of the same values is exact to far less.
  CHECK(totals["revenue"] == Approx(revenue).margin(0.005));
  // Nothing was refused on the server's side either.
  CHECK_THAT(server.Log(), !Catch::Contains("in_future") && !Catch::Contains("too_old"));
}
#endif
