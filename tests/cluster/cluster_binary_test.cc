// analytics_server with --cluster (its event log in NATS JetStream, replicas 3) against a real
// 3-server NATS cluster started by the test: kill -9 of the node and of one NATS server while
// event_reporter replays a file; the counts at the end are exact.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/nats_cluster.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

using rta::testing::MetricTotal;
using rta::testing::NatsCluster;
using rta::testing::ServerProcess;

namespace {

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : ",") + part;
  return out;
}

}  // namespace

TEST_CASE("with --cluster, kill -9 of the node and of a NATS server mid-replay: exact counts",
          "[cluster][binary]") {
  NatsCluster nats;
  REQUIRE(nats.ok());
  rta::testing::TempDir dir;
  constexpr int kEvents = 30'000;
  const std::string file = dir.path() + "/traffic.jsonl";
  {
    const std::string command = std::string(RTA_EVENT_REPORTER_BINARY) + " generate --events " +
                                std::to_string(kEvents) + " --rate 2000 --seed 7 --output " + file +
                                " --quiet";
    REQUIRE(std::system(command.c_str()) == 0);
  }
  uint64_t page_views = 0;
  {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      page_views += nlohmann::json::parse(line).value("event_type", "") == "page_view";
    }
  }
  const int port = rta::testing::FreeLoopbackPort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const std::vector<std::string> args = {
      "--data-dir",      dir.path() + "/data", "--listen", address,     "--cluster",
      Join(nats.urls()), "--cluster-node",     "node-a",   "--tick-ms", "100"};
  // Fails the test with the server's own log when it did not come up.
  auto started = [](ServerProcess& process) {
    if (!process.listening()) FAIL("the server did not start:\n" << process.Log());
  };
  auto server = std::make_unique<ServerProcess>(args);
  started(*server);

  const std::string summary_path = dir.path() + "/summary.json";
  const std::string reporter_log = dir.path() + "/reporter.log";
  const pid_t reporter = fork();
  if (reporter == 0) {
    dup2(open(summary_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    dup2(open(reporter_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    execl(RTA_EVENT_REPORTER_BINARY, "event_reporter", "replay", file.c_str(), "--server",
          address.c_str(), "--json", "--quiet", static_cast<char*>(nullptr));
    _exit(127);
  }
  // Mid-replay: the node, then a NATS server (the stream keeps a quorum of two), then the node
  // again. The reporter re-sends what was not acknowledged.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  server->Signal(SIGKILL);
  REQUIRE(server->WaitForExit(std::chrono::seconds(10)));
  server = std::make_unique<ServerProcess>(args);
  started(*server);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  nats.Kill(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  server->Signal(SIGKILL);
  REQUIRE(server->WaitForExit(std::chrono::seconds(10)));
  server = std::make_unique<ServerProcess>(args);
  started(*server);

  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (waitpid(reporter, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(reporter, SIGKILL);
      waitpid(reporter, &status, 0);
      FAIL("event_reporter did not finish within 300 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::ifstream log_file(reporter_log);
  INFO("reporter: " << std::string((std::istreambuf_iterator<char>(log_file)), {}));
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  std::ifstream summary_file(summary_path);
  const auto summary = nlohmann::json::parse(summary_file);
  CHECK(summary.value("accepted", 0ull) == static_cast<uint64_t>(kEvents));
  CHECK(rta::testing::WaitFor([&] { return MetricTotal(server->address()) == kEvents; }));
  CHECK(MetricTotal(server->address(), "page_views") == static_cast<double>(page_views));

  // A node on another machine (no data dir) rebuilds every number from the stream alone.
  server.reset();
  auto fresh_args = args;
  fresh_args[1] = dir.path() + "/elsewhere";
  ServerProcess fresh(fresh_args);
  started(fresh);
  CHECK(rta::testing::WaitFor([&] { return MetricTotal(fresh.address()) == kEvents; }));
  CHECK(MetricTotal(fresh.address(), "page_views") == static_cast<double>(page_views));
}
