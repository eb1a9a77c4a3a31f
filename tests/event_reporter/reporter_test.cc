// Reporter: retries over broken streams, a server that comes up late, an unreachable one,
// refusals that retrying cannot fix, load balancing over two servers.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>

#include "tests/event_reporter/cli_test_util.h"
#include "tests/support/server_harness.h"

using rta::reporter::testing::Answer;
using rta::reporter::testing::CliRun;
using rta::reporter::testing::FileAnswers;
using rta::reporter::testing::GenerateFile;
using rta::reporter::testing::Run;
using rta::reporter::testing::Total;
using rta::reporter::testing::UnusedPort;
using rta::testing::ServerHarness;

TEST_CASE("streams broken mid-way are re-sent: nothing lost, nothing counted twice",
          "[reporter][retry]") {
  auto config = ServerHarness::DefaultConfig();
  config.fail_every_nth_ingest_stream_for_test = 3;  // after its first message is counted
  ServerHarness server(config);
  const std::string path = GenerateFile("retry.jsonl", 5'000, 11);
  const FileAnswers answers = Answer(path);
  const bool batched = GENERATE(true, false);
  std::vector<std::string> args = {
      "replay", path,           "--server", server.address(), "--json", "--stream-events",
      "400",    "--batch-size", "100"};
  if (!batched) args.push_back("--no-batch");
  const CliRun run = Run(args);
  INFO(run.err);
  REQUIRE(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["retries"] > 0);
  CHECK(summary["failed"] == 0);
  // The events of a broken stream were counted but never acknowledged; resent, they come back
  // as duplicates. Together: every event exactly once.
  CHECK(summary["accepted"].get<uint64_t>() + summary["duplicates"].get<uint64_t>() ==
        answers.events);
  CHECK(summary["duplicates"].get<uint64_t>() > 0);
  CHECK_THAT(run.err, Catch::Contains("(UNAVAILABLE: injected stream failure (test only)), "
                                      "resending"));
  CHECK(Total(server, "events_total") == answers.events);
  CHECK(Total(server, "page_views") == answers.page_views);
  CHECK(Total(server, "revenue") == Approx(answers.revenue).epsilon(1e-9));
  std::remove(path.c_str());
}

TEST_CASE("a server that comes up late gets every event once", "[reporter][retry]") {
  const int port = UnusedPort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const std::string path = GenerateFile("late.jsonl", 2'000, 5);
  // The reporter starts against a closed port and retries; the server then starts there.
  auto reporter = std::async(std::launch::async, [&] {
    return Run({"replay", path, "--server", address, "--json", "--give-up-after", "60"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // a few failed attempts
  auto config = ServerHarness::DefaultConfig();
  config.listen = address;
  ServerHarness server(config);
  REQUIRE(reporter.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  const CliRun run = reporter.get();
  INFO(run.err);
  CHECK(run.status == 0);
  CHECK_THAT(run.err,
             Catch::Contains("server unreachable at " + address + " (UNAVAILABLE), retrying in"));
  CHECK(run.Summary()["retries"] > 0);
  CHECK(Total(server, "events_total") == 2'000);
  std::remove(path.c_str());
}

TEST_CASE("an unreachable server: clear retries, then it gives up and says so",
          "[reporter][retry]") {
  const std::string address = "127.0.0.1:" + std::to_string(UnusedPort());
  const CliRun run =
      Run({"send", "--type", "page_view", "--server", address, "--json", "--give-up-after", "1"});
  CHECK(run.status == 1);
  CHECK_THAT(run.err,
             Catch::Contains("server unreachable at " + address + " (UNAVAILABLE), retrying in"));
  CHECK_THAT(run.err, Catch::Contains("gave up after"));
  CHECK(run.Summary()["failed"] == 1);
}

TEST_CASE("a refusal that retrying cannot fix stops the delivery", "[reporter][retry]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_batch_events = 10;
  ServerHarness server(config);
  const std::string path = GenerateFile("refused.jsonl", 100, 3);
  const CliRun run =
      Run({"replay", path, "--server", server.address(), "--json", "--batch-size", "50"});
  CHECK(run.status == 1);
  CHECK_THAT(run.err, Catch::Contains("the server refused the events (INVALID_ARGUMENT: events: "
                                      "batch #0 has 50 events, limit 10)"));
  const auto summary = run.Summary();
  CHECK(summary["failed"] == 100);
  CHECK(summary["retries"] == 0);
  std::remove(path.c_str());
}

TEST_CASE("several servers: streams are balanced and the sum of their counts is exact",
          "[reporter][balance]") {
  ServerHarness first, second;
  const std::string path = GenerateFile("balance.jsonl", 4'000, 9);
  const CliRun run = Run({"replay", path, "--server", first.address() + "," + second.address(),
                          "--streams", "4", "--stream-events", "200", "--json"});
  INFO(run.err);
  REQUIRE(run.status == 0);
  const double a = Total(first, "events_total");
  const double b = Total(second, "events_total");
  CHECK(a + b == 4'000);
  CHECK(a > 0);
  CHECK(b > 0);
  std::remove(path.c_str());
}
