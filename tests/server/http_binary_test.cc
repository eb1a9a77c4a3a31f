// The HTTP port of the real binary: events acknowledged over HTTP survive kill -9 (the log
// replay, not a checkpoint, brings them back) and reach the history.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "analytics.grpc.pb.h"
#include "tests/support/http_client.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace {

double EventsTotalOf(const std::string& address) {
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::MetricsQuery query;
  query.add_metric_types("events_total");
  query.add_windows(analytics::WINDOW_TOTAL);
  analytics::MetricsSnapshot snapshot;
  if (!stub->GetMetrics(&context, query, &snapshot).ok() || snapshot.metrics_size() != 1) {
    return -1;
  }
  return snapshot.metrics(0).value();
}

}  // namespace

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
  REQUIRE(rta::testing::WaitFor([&] { return EventsTotalOf(again.address()) == 200; }));
  CHECK(again.Log().find("replayed_records=5 ") != std::string::npos);
  CHECK(again.Log().find("rollup_fold_failed") == std::string::npos);
  // The client re-sends everything (it never saw some answers, say): nothing counts twice.
  for (const std::string& body : bodies) {
    const auto answer = rta::testing::PostEvents(again.http_port(), body);
    REQUIRE(answer.status == 200);
    CHECK(nlohmann::json::parse(answer.body)["duplicates"] == 40);
  }
  CHECK(EventsTotalOf(again.address()) == 200);
}
