// The HTTP port of the real binary: events acknowledged over HTTP survive kill -9 (the log
// replay, not a checkpoint, brings them back) and reach the history.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/support/http_client.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

TEST_CASE("events acknowledged over HTTP survive kill -9 and are counted once after it",
          "[http][durability]") {
  rta::testing::TempDir dir;
  const int64_t now = rta::testing::NowMs();
  std::vector<std::string> bodies;
  for (int b = 0; b < 5; ++b) {
    nlohmann::json batch = nlohmann::json::array();
    for (int i = 0; i < 40; ++i) {
      batch.push_back({{"event_id", "k" + std::to_string(b) + "-" + std::to_string(i)},
                       {"event_type", i % 4 == 0 ? "purchase" : "page_view"},
                       {"timestamp_ms", now},
                       {"visitor_id", "v" + std::to_string(i)},
                       {"value", i % 4 == 0 ? 2.5 : 0.0}});
    }
    bodies.push_back(batch.dump());
  }
  // A long checkpoint interval: the restart must rebuild from the log records.
  const std::vector<std::string> flags = {"--data-dir", dir.path(),  "--checkpoint-interval-s",
                                          "3600",       "--tick-ms", "100"};
  {
    rta::testing::ServerProcess server(flags);
    REQUIRE(server.listening());
    REQUIRE(server.http_port() > 0);
    for (const std::string& body : bodies) {
      const auto answer = rta::testing::PostEvents(server.http_port(), body);
      REQUIRE(answer.status == 200);
      REQUIRE(nlohmann::json::parse(answer.body)["accepted"] == 40);
    }
    server.Signal(SIGKILL);
    REQUIRE(server.WaitForExit(std::chrono::seconds(10)));
  }
  rta::testing::ServerProcess again(flags);
  REQUIRE(again.listening());
  REQUIRE(rta::testing::WaitFor([&] { return rta::testing::MetricTotal(again.address()) == 200; }));
  CHECK(again.Log().find("replayed_records=5 ") != std::string::npos);
  CHECK(again.Log().find("rollup_fold_failed") == std::string::npos);
  // The client re-sends everything (it never saw some answers, say): nothing counts twice.
  for (const std::string& body : bodies) {
    const auto answer = rta::testing::PostEvents(again.http_port(), body);
    REQUIRE(answer.status == 200);
    CHECK(nlohmann::json::parse(answer.body)["duplicates"] == 40);
  }
  CHECK(rta::testing::MetricTotal(again.address()) == 200);
}

TEST_CASE(
    "kill -9 and SIGTERM while a client posts over HTTP with retries: each event counted once",
    "[http][durability][kill]") {
  rta::testing::TempDir dir;
  // The same ports after every restart, as a real client's endpoint: the first start binds
  // ports the kernel picks (no other process can take them first), and the restarts ask for
  // those. No per-address rate limit (the test posts as fast as the server answers).
  std::vector<std::string> flags = {"--data-dir",
                                    dir.path(),
                                    "--listen",
                                    "127.0.0.1:0",
                                    "--http-listen",
                                    "127.0.0.1:0",
                                    "--http-events-per-second-per-address",
                                    "0",
                                    "--tick-ms",
                                    "100"};
  auto server = std::make_unique<rta::testing::ServerProcess>(flags);
  REQUIRE(server->listening());
  const int http_port = server->http_port();
  REQUIRE(http_port > 0);
  flags[3] = server->address();
  flags[5] = "127.0.0.1:" + std::to_string(http_port);

  constexpr int kBatches = 300;
  constexpr int kPerBatch = 20;
  const int64_t now = rta::testing::NowMs();
  int page_views = 0;
  std::vector<std::string> bodies;
  for (int b = 0; b < kBatches; ++b) {
    nlohmann::json batch = nlohmann::json::array();
    for (int i = 0; i < kPerBatch; ++i) {
      const bool view = (b + i) % 3 != 0;
      page_views += view;
      batch.push_back({{"event_id", "hk" + std::to_string(b) + "-" + std::to_string(i)},
                       {"event_type", view ? "page_view" : "click"},
                       {"timestamp_ms", now},
                       {"visitor_id", "v" + std::to_string(i)},
                       {"session_id", "s" + std::to_string(b % 50)}});
    }
    bodies.push_back(batch.dump());
  }

  // The client: each batch until it is answered 200 (the same body, so the same event ids),
  // paced, and its last batches held back until the last restart, so that the posting spans
  // every stop. Bounded: 120 s in all.
  std::atomic<int> answered{0};
  std::atomic<bool> stops_done{false};
  uint64_t accepted = 0, duplicates = 0, refused = 0, retries = 0;
  std::string last_failure;
  std::thread client([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (int b = 0; b < kBatches; ++b) {
      while (std::chrono::steady_clock::now() < deadline) {
        const auto answer = rta::testing::PostEvents(http_port, bodies[b]);
        if (answer.status == 200) {
          const auto counts = nlohmann::json::parse(answer.body);
          accepted += counts.value("accepted", 0ull);
          duplicates += counts.value("duplicates", 0ull);
          refused += counts.value("rejected", 0ull);
          break;
        }
        ++retries;  // no answer (down, killed mid-request) or 503 (shutting down)
        last_failure = std::to_string(answer.status) + " " + answer.body;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      answered.store(b + 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      // The last ten batches go after the last restart, whatever the kills' timing was.
      while (b == kBatches - 11 && !stops_done.load() &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });

  // Three SIGKILLs and a SIGTERM, each after a random 100-700 ms of posting.
  std::mt19937 rng(std::random_device{}());
  const int signals[] = {SIGKILL, SIGTERM, SIGKILL, SIGKILL};
  int stops = 0;
  for (const int signal_number : signals) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 700)(rng)));
    server->Signal(signal_number);
    REQUIRE(server->WaitForExit(std::chrono::seconds(20)));
    ++stops;
    server = std::make_unique<rta::testing::ServerProcess>(flags);
    INFO("server log: " << server->Log());
    REQUIRE(server->listening());
  }
  stops_done.store(true);
  client.join();
  INFO("stops " << stops << ", retries " << retries << ", duplicates " << duplicates
                << ", last failure " << last_failure);
  REQUIRE(answered.load() == kBatches);
  CHECK(stops == 4);
  CHECK(refused == 0);
  // Each batch answered once: what the answers accepted, or called duplicates of what an
  // answer lost in a kill had already logged, adds up to every event exactly once.
  CHECK(accepted + duplicates == static_cast<uint64_t>(kBatches * kPerBatch));
  CHECK(rta::testing::WaitFor(
      [&] { return rta::testing::MetricTotal(server->address()) == kBatches * kPerBatch; }));
  CHECK(rta::testing::MetricTotal(server->address()) == kBatches * kPerBatch);
  CHECK(rta::testing::MetricTotal(server->address(), "page_views") == page_views);
  // And one more restart from the log alone agrees.
  server->Signal(SIGKILL);
  REQUIRE(server->WaitForExit(std::chrono::seconds(20)));
  server = std::make_unique<rta::testing::ServerProcess>(flags);
  INFO("server log: " << server->Log());
  REQUIRE(server->listening());
  CHECK(rta::testing::WaitFor(
      [&] { return rta::testing::MetricTotal(server->address()) == kBatches * kPerBatch; }));
  CHECK(rta::testing::MetricTotal(server->address(), "page_views") == page_views);
}
