// The history's writer against a real segment log and a real rollup store: neither a start nor
// a stop waits for the whole log when the writer is far behind; the thread folds the rest in
// the background; every record is in the rollups exactly once across restarts.
#include "server/rollup_writer.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "server/storage/ingest_record.h"
#include "server/storage/segment_log.h"
#include "tests/support/temp_dir.h"

namespace rta::server {
namespace {

constexpr int64_t kWriterNowMs = 1'800'000'000'000;

// Appends `count` single-event records (page views, one minute apart in event time, all within
// one day) and waits until they are durable.
void AppendEvents(storage::EventLog& log, int count) {
  storage::Lsn last = 0;
  std::string encoded;
  for (int i = 0; i < count; ++i) {
    analytics::EventData event;
    event.set_event_type("page_view");
    event.set_timestamp_ms(kWriterNowMs - 3'600'000 - (i % 600) * 1000);
    event.set_visitor_id("v" + std::to_string(i));
    const std::string message = event.SerializeAsString();
    storage::IngestRecord record;
    record.kind = storage::RecordKind::kEvent;
    record.ingest_ms = kWriterNowMs;
    record.accepted = 1;
    record.message = message;
    storage::EncodeIngestRecord(record, &encoded);
    std::string why;
    REQUIRE(log.Append(encoded, &last, &why));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (log.durable_lsn() < last) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

uint64_t StoredEvents(const RollupWriter& writer) {
  uint64_t events = 0;
  std::string error;
  REQUIRE(writer.store().Scan(
      storage::Resolution::kDay, "", 0, kWriterNowMs / 1000 + 86'400,
      [&](int64_t, const storage::RollupCell& cell) { events += cell.counters.events; }, &error,
      storage::CellParts::kCounters));
  return events;
}

TEST_CASE("rollup writer: a start and a stop read the log for a bounded time, the thread the rest",
          "[history][writer]") {
  rta::testing::TempDir dir;
  storage::LogOptions log_options;
  log_options.dir = dir.path() + "/log";
  log_options.fsync = storage::FsyncMode::kNever;
  storage::OpenReport report;
  std::string error;
  auto log = storage::OpenSegmentLog(log_options, &report, &error);
  INFO(error);
  REQUIRE(log != nullptr);
  constexpr int kFirst = 3000;
  AppendEvents(*log, kFirst);
  agg::ManualClock clock(kWriterNowMs);

  RollupWriter::Options options;
  options.dir = dir.path() + "/history";
  options.flush_interval_ms = 50;
  options.start_catch_up_ms = 0;  // the deadline has passed at the first check
  {
    auto writer = RollupWriter::Open(options, *log, clock, &error);
    INFO(error);
    REQUIRE(writer != nullptr);
    REQUIRE(writer->CatchUp(&error));
    // At most one check interval of records before the port would open.
    CHECK(writer->applied_lsn() < static_cast<uint64_t>(kFirst));
    writer->Start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (writer->applied_lsn() < static_cast<uint64_t>(kFirst)) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(StoredEvents(*writer) == kFirst);
    writer->Stop();
  }

  // Far behind at a stop that may not read at all: what it has not folded stays in the log and
  // the next start folds it, once.
  constexpr int kSecond = 3000;
  AppendEvents(*log, kSecond);
  options.stop_catch_up_ms = 0;
  {
    auto writer = RollupWriter::Open(options, *log, clock, &error);
    REQUIRE(writer != nullptr);
    REQUIRE(writer->CatchUp(&error));
    writer->Start();
    const auto started = std::chrono::steady_clock::now();
    writer->Stop();  // before the thread's first read of the log (it waits a second for a gap)
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
    CHECK(writer->applied_lsn() < static_cast<uint64_t>(kFirst + kSecond));
  }
  options.start_catch_up_ms = 30'000;
  auto writer = RollupWriter::Open(options, *log, clock, &error);
  REQUIRE(writer != nullptr);
  REQUIRE(writer->CatchUp(&error));
  CHECK(writer->applied_lsn() == static_cast<uint64_t>(kFirst + kSecond));
  CHECK(StoredEvents(*writer) == kFirst + kSecond);
}

}  // namespace
}  // namespace rta::server
