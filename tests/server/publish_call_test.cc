// Integration tests of PublishEvents (publish_call.cc): the real server on an ephemeral loopback
// port, real gRPC stubs; memory-only and with a data directory (the event log, checkpoints).
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"

using rta::testing::DeadlineContext;
using rta::testing::MakeEvent;
using rta::testing::ServerHarness;

namespace {

using rta::testing::TempDir;

analytics::PublishRequest Batch(const std::string& producer, uint64_t sequence, int64_t now_ms,
                                int events, const std::string& id_prefix = "") {
  analytics::PublishRequest request;
  request.set_producer_id(producer);
  request.set_sequence(sequence);
  for (int i = 0; i < events; ++i) {
    *request.add_events() =
        MakeEvent((id_prefix.empty() ? producer : id_prefix) + "-" + std::to_string(sequence) +
                      "-" + std::to_string(i),
                  "page_view", now_ms, "v" + std::to_string(i % 7), "s" + std::to_string(i % 3));
  }
  return request;
}

// Sends the batches on one stream, reads every ack; returns the final status.
grpc::Status Publish(analytics::AnalyticsService::Stub& stub,
                     const std::vector<analytics::PublishRequest>& batches,
                     std::vector<analytics::PublishAck>* acks) {
  auto context = DeadlineContext(30);
  auto stream = stub.PublishEvents(context.get());
  for (const auto& batch : batches) {
    if (!stream->Write(batch)) break;
  }
  stream->WritesDone();
  analytics::PublishAck ack;
  while (stream->Read(&ack)) acks->push_back(ack);
  return stream->Finish();
}

rta::server::ServerConfig ConfigWithDataDir(const std::string& data_dir) {
  rta::server::ServerConfig config = ServerHarness::DefaultConfig();
  config.data_dir = data_dir;
  return config;
}

}  // namespace

TEST_CASE("PublishEvents acknowledges every batch, in order, with its counts",
          "[server][integration][publish]") {
  TempDir dir;
  const bool durable = GENERATE(false, true);
  INFO((durable ? "with a data directory" : "memory only"));
  ServerHarness h(durable ? ConfigWithDataDir(dir.path()) : ServerHarness::DefaultConfig());
  auto stub = h.NewStub();
  const int64_t now = h.clock().NowMs();
  std::vector<analytics::PublishRequest> batches;
  for (uint64_t s = 1; s <= 20; ++s) batches.push_back(Batch("p1", s, now, 25));
  // A duplicate event inside a batch and a refused one.
  *batches[18].add_events() = batches[2].events(0);
  *batches[19].add_events() = MakeEvent("bad", "Not A Type!", now);
  std::vector<analytics::PublishAck> acks;
  const grpc::Status status = Publish(*stub, batches, &acks);
  REQUIRE(status.ok());
  REQUIRE(acks.size() == 20);
  for (size_t i = 0; i < acks.size(); ++i) {
    CHECK(acks[i].sequence() == i + 1);
    CHECK_FALSE(acks[i].duplicate_batch());
  }
  CHECK(acks[0].accepted() == 25);
  CHECK(acks[18].accepted() == 25);
  CHECK(acks[18].duplicates() == 1);
  CHECK(acks[19].rejected() == 1);
  REQUIRE(acks[19].errors_size() == 1);
  CHECK_THAT(acks[19].errors(0), Catch::Contains("event #25 (id bad): event_type"));
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 500);

  SECTION("a re-sent batch, on a new stream, is a duplicate batch with the original counts") {
    std::vector<analytics::PublishAck> again;
    REQUIRE(Publish(*stub, {batches[18], batches[19], Batch("p1", 21, now, 5)}, &again).ok());
    REQUIRE(again.size() == 3);
    CHECK(again[0].duplicate_batch());
    CHECK(again[0].accepted() == 25);
    CHECK(again[0].duplicates() == 1);
    CHECK(again[1].duplicate_batch());
    CHECK(again[1].rejected() == 1);
    CHECK_FALSE(again[2].duplicate_batch());
    CHECK(again[2].accepted() == 5);
    CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 505);
    // Older than the last 8 batches: recognised, but its counts are no longer known.
    again.clear();
    REQUIRE(Publish(*stub, {batches[2]}, &again).ok());
    REQUIRE(again.size() == 1);
    CHECK(again[0].duplicate_batch());
    CHECK(again[0].duplicates() == 25);
  }
  SECTION("a sequence gap ends the stream with FAILED_PRECONDITION naming the next sequence") {
    std::vector<analytics::PublishAck> gap;
    const grpc::Status refused = Publish(*stub, {Batch("p1", 23, now, 1)}, &gap);
    CHECK(refused.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(refused.error_message(), Catch::Contains("next one expected is 21"));
    CHECK(gap.empty());
  }
  SECTION("a bad producer_id or sequence 0 is INVALID_ARGUMENT naming the field") {
    std::vector<analytics::PublishAck> none;
    grpc::Status refused = Publish(*stub, {Batch("", 1, now, 1)}, &none);
    CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(refused.error_message(), Catch::StartsWith("producer_id"));
    refused = Publish(*stub, {Batch(std::string(129, 'x'), 1, now, 1)}, &none);
    CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    refused = Publish(*stub, {Batch("p2", 0, now, 1)}, &none);
    CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(refused.error_message(), Catch::StartsWith("sequence"));
  }
}

TEST_CASE(
    "PublishEvents: a client that writes far beyond the window before reading is paced, "
    "and every batch is acknowledged in order",
    "[server][integration][publish]") {
  TempDir dir;
  rta::server::ServerConfig config = ConfigWithDataDir(dir.path());
  config.publish_window_batches = 4;
  ServerHarness h(config);
  auto stub = h.NewStub();
  const int64_t now = h.clock().NowMs();
  std::vector<analytics::PublishRequest> batches;
  for (uint64_t s = 1; s <= 300; ++s) batches.push_back(Batch("flow", s, now, 10));
  std::vector<analytics::PublishAck> acks;
  REQUIRE(Publish(*stub, batches, &acks).ok());
  REQUIRE(acks.size() == 300);
  for (size_t i = 0; i < acks.size(); ++i) REQUIRE(acks[i].sequence() == i + 1);
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 3000);
}

TEST_CASE("PublishEvents with a data directory: a restart keeps every count and every producer",
          "[server][integration][publish][durability]") {
  TempDir dir;
  std::vector<analytics::PublishRequest> batches;
  double events_total = 0, page_views = 0, visitors = 0;
  int64_t now = 0;
  {
    ServerHarness h(ConfigWithDataDir(dir.path()));
    now = h.clock().NowMs();
    auto stub = h.NewStub();
    for (uint64_t s = 1; s <= 30; ++s) batches.push_back(Batch("r", s, now, 40));
    std::vector<analytics::PublishAck> acks;
    REQUIRE(Publish(*stub, batches, &acks).ok());
    REQUIRE(acks.size() == 30);
    events_total = h.Metric("events_total", analytics::WINDOW_TOTAL);
    page_views = h.Metric("page_views", analytics::WINDOW_1M);
    visitors = h.Metric("unique_visitors", analytics::WINDOW_1H);
    CHECK(events_total == 1200);
  }  // shutdown: a last checkpoint
  ServerHarness h(ConfigWithDataDir(dir.path()));
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == events_total);
  CHECK(h.Metric("page_views", analytics::WINDOW_1M) == page_views);
  CHECK(h.Metric("unique_visitors", analytics::WINDOW_1H) == visitors);
  auto stub = h.NewStub();
  std::vector<analytics::PublishAck> acks;
  REQUIRE(Publish(*stub, {batches[29], Batch("r", 31, now, 40)}, &acks).ok());
  REQUIRE(acks.size() == 2);
  CHECK(acks[0].duplicate_batch());
  CHECK(acks[0].accepted() == 40);
  CHECK(acks[1].accepted() == 40);
  // An event id from before the restart is still a duplicate on another producer.
  analytics::PublishRequest other = Batch("other", 1, now, 0);
  *other.add_events() = batches[0].events(0);
  acks.clear();
  REQUIRE(Publish(*stub, {other}, &acks).ok());
  REQUIRE(acks.size() == 1);
  CHECK(acks[0].duplicates() == 1);
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 1240);
}
