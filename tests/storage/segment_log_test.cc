#include "server/storage/segment_log.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "server/storage/record_format.h"
#include "tests/storage/storage_test_util.h"

namespace rta::storage {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

constexpr auto kWait = 5s;
const uint64_t kFramed1K = detail::kRecordHeaderSize + 1024;

std::unique_ptr<EventLog> MustOpen(const LogOptions& options, OpenReport* report = nullptr) {
  OpenReport local;
  std::string error;
  auto log = OpenSegmentLog(options, report ? report : &local, &error);
  INFO(error);
  REQUIRE(log != nullptr);
  return log;
}

// Appends `count` 1 KiB records, each waited for: one record per write, so segment sizes are
// predictable. Returns their Lsns.
std::vector<Lsn> AppendDurably(EventLog& log, int count, int writer = 0) {
  std::vector<Lsn> lsns;
  for (int i = 0; i < count; ++i) {
    Lsn lsn = 0;
    std::string why;
    REQUIRE(log.Append(testing::MakeRecord(writer, i, 1024), &lsn, &why));
    REQUIRE(testing::WaitDurable(log, lsn, kWait) == 1);
    lsns.push_back(lsn);
  }
  return lsns;
}

TEST_CASE("records from 4 threads are read back once each, in Lsn order, after reopen",
          "[storage][segment_log]") {
  FsyncMode mode = FsyncMode::kAlways;
  SECTION("kAlways") { mode = FsyncMode::kAlways; }
  SECTION("kInterval") { mode = FsyncMode::kInterval; }
  SECTION("kNever") { mode = FsyncMode::kNever; }
  TempDir dir;
  LogOptions options;
  options.dir = dir.path() + "/log";  // created by Open
  options.fsync = mode;
  options.interval_ms = 2;
  options.segment_bytes = 64 << 10;  // a few rotations on the way
  constexpr int kThreads = 4, kPerThread = 150;

  std::map<std::string, Lsn> written;  // payload -> lsn
  std::atomic<int> fired{0}, fired_early{0};
  std::mutex mu;
  {
    auto log = MustOpen(options);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          std::string record = testing::MakeRecord(t, i, 100 + (i * 37) % 900);
          Lsn lsn = 0;
          std::string why;
          if (!log->Append(record, &lsn, &why)) {
            ++failures;
            continue;
          }
          {
            std::lock_guard lock(mu);
            written[record] = lsn;
          }
          log->WhenDurable(lsn, [&, lsn](bool ok) {
            ++fired;
            if (!ok || log->durable_lsn() < lsn) ++fired_early;
          });
          // Every 10th record waits for durability, like a producer waiting for its ack.
          if (i % 10 == 9 && testing::WaitDurable(*log, lsn, kWait) != 1) ++failures;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(failures == 0);
    const Lsn last = log->last_lsn();
    CHECK(last == kThreads * kPerThread);
    REQUIRE(testing::WaitDurable(*log, last, kWait) == 1);
    CHECK(log->durable_lsn() == last);
    CHECK(fired == kThreads * kPerThread);
    CHECK(fired_early == 0);
    CHECK(log->stats().records_appended == kThreads * kPerThread);
    CHECK(log->stats().segments > 1);
  }

  OpenReport report;
  auto log = MustOpen(options, &report);
  CHECK(report.torn_tail_bytes_truncated == 0);
  CHECK(report.first_lsn == 1);
  CHECK(report.last_lsn == kThreads * kPerThread);
  std::string why;
  auto records = testing::ReadAll(*log, 1, &why);
  CHECK(why.empty());
  REQUIRE(records.size() == written.size());
  for (size_t i = 0; i < records.size(); ++i) {
    CHECK(records[i].first == i + 1);
    auto it = written.find(records[i].second);
    REQUIRE(it != written.end());
    CHECK(it->second == records[i].first);
  }
  // Lsns continue after the reopen.
  Lsn lsn = 0;
  REQUIRE(log->Append("after reopen", &lsn, &why));
  CHECK(lsn == kThreads * kPerThread + 1);
  CHECK(testing::WaitDurable(*log, lsn, kWait) == 1);
  auto tail = testing::ReadAll(*log, lsn, &why);
  REQUIRE(tail.size() == 1);
  CHECK(tail[0].second == "after reopen");
}

TEST_CASE("WhenDurable callbacks run in Lsn order, whatever order they were given in",
          "[storage][segment_log]") {
  FsyncMode mode = FsyncMode::kAlways;
  SECTION("kAlways") { mode = FsyncMode::kAlways; }
  SECTION("kInterval") { mode = FsyncMode::kInterval; }
  SECTION("kNever") { mode = FsyncMode::kNever; }
  TempDir dir;
  LogOptions options;
  options.dir = dir.path();
  options.fsync = mode;
  options.interval_ms = 1;
  auto log = MustOpen(options);
  // The first record's callback holds the writer thread, so every later record is still
  // waiting when its callback is registered (in reverse order).
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::vector<Lsn> order;
  // Registered before the record exists, so it cannot run at once on this thread.
  log->WhenDurable(1, [&](bool) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, kWait, [&] { return release; });
  });
  Lsn lsn = 0;
  REQUIRE(log->Append("first", &lsn, nullptr));
  REQUIRE(lsn == 1);
  std::vector<Lsn> lsns;
  for (int i = 0; i < 100; ++i) {
    REQUIRE(log->Append(testing::MakeRecord(0, i, 300), &lsn, nullptr));
    lsns.push_back(lsn);
  }
  for (auto it = lsns.rbegin(); it != lsns.rend(); ++it) {
    log->WhenDurable(*it, [&, l = *it](bool ok) {
      std::lock_guard lock(mu);
      if (ok) order.push_back(l);
    });
  }
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  REQUIRE(testing::WaitDurable(*log, lsns.back(), kWait) == 1);
  std::lock_guard lock(mu);
  CHECK(order == lsns);
}

TEST_CASE("close writes pending records and answers every callback", "[storage][segment_log]") {
  TempDir dir;
  LogOptions options;
  options.dir = dir.path();
  options.fsync = FsyncMode::kInterval;
  options.interval_ms = 60000;  // only the close syncs
  std::atomic<int> ok{0}, failed{0};
  {
    auto log = MustOpen(options);
    for (int i = 0; i < 100; ++i) {
      Lsn lsn;
      std::string why;
      REQUIRE(log->Append(testing::MakeRecord(0, i, 500), &lsn, &why));
      log->WhenDurable(lsn, [&](bool durable) { ++(durable ? ok : failed); });
    }
  }
  CHECK(ok == 100);
  CHECK(failed == 0);
  auto log = MustOpen(options);
  CHECK(testing::ReadAll(*log, 1, nullptr).size() == 100);
}

TEST_CASE("Append refuses records beyond max_pending_bytes", "[storage][segment_log]") {
  TempDir dir;
  LogOptions options;
  options.dir = dir.path();
  options.max_pending_bytes = 1000;
  auto log = MustOpen(options);
  Lsn lsn = 0;
  std::string why;
  CHECK_FALSE(log->Append(std::string(2000, 'x'), &lsn, &why));
  CHECK_THAT(why, Catch::Contains("max_pending_bytes"));
  CHECK(log->health().writable);
  CHECK(log->stats().appends_refused == 1);
  CHECK(log->Append(std::string(100, 'x'), &lsn, &why));
  CHECK(lsn == 1);
}

TEST_CASE("rotation, and TruncateBefore deletes only wholly covered segments",
          "[storage][segment_log]") {
  TempDir dir;
  LogOptions options;
  options.dir = dir.path();
  options.segment_bytes = 4096;  // 4 framed 1 KiB records per segment: 1, 5, 9, 13, 17
  {
    auto log = MustOpen(options);
    AppendDurably(*log, 20);
    auto files = testing::SegmentFiles(dir.path());
    REQUIRE(files.size() == 5);
    CHECK(files[2] == dir.path() + "/00000000000000000009.log");
    CHECK(log->stats().segments == 5);

    log->TruncateBefore(10);  // 1..4 and 5..8 are covered; 9..12 holds 10..12
    files = testing::SegmentFiles(dir.path());
    REQUIRE(files.size() == 3);
    CHECK(files[0] == dir.path() + "/00000000000000000009.log");
    auto records = testing::ReadAll(*log, 1, nullptr);
    REQUIRE(!records.empty());
    CHECK(records.front().first == 9);
    CHECK(records.back().first == 20);
    CHECK(testing::ReadAll(*log, 14, nullptr).front().first == 14);

    log->TruncateBefore(1000);  // the segment being written stays
    CHECK(testing::SegmentFiles(dir.path()).size() == 1);
  }
  OpenReport report;
  auto log = MustOpen(options, &report);
  CHECK(report.first_lsn == 17);
  CHECK(report.last_lsn == 20);
  Lsn lsn = 0;
  REQUIRE(log->Append("next", &lsn, nullptr));
  CHECK(lsn == 21);
}

TEST_CASE("a torn tail is truncated at open and appends continue", "[storage][segment_log]") {
  TempDir dir;
  LogOptions options;
  options.dir = dir.path();
  {
    auto log = MustOpen(options);
    AppendDurably(*log, 10);
  }
  const std::string file = testing::SegmentFiles(dir.path()).back();
  uint64_t expect_truncated = 0;
  Lsn expect_next = 0;
  size_t expect_records = 0;
  SECTION("last record cut mid-payload") {
    testing::TruncateFile(file, 10 * kFramed1K - 10);
    expect_truncated = kFramed1K - 10;
    expect_next = 10;
    expect_records = 9;
  }
  SECTION("last record cut mid-header") {
    testing::TruncateFile(file, 9 * kFramed1K + 7);
    expect_truncated = 7;
    expect_next = 10;
    expect_records = 9;
  }
  SECTION("zeros after the last record") {
    testing::AppendZeros(file, 4096);
    expect_truncated = 4096;
    expect_next = 11;
    expect_records = 10;
  }
  SECTION("last record's payload damaged") {
    testing::FlipByte(file, 9 * kFramed1K + 100);
    expect_truncated = kFramed1K;
    expect_next = 10;
    expect_records = 9;
  }
  OpenReport report;
  auto log = MustOpen(options, &report);
  CHECK(report.torn_tail_bytes_truncated == expect_truncated);
  CHECK(report.corrupt_records_skipped == 0);
  REQUIRE(report.messages.size() == 1);
  CHECK_THAT(report.messages[0], Catch::Contains(file));
  auto records = testing::ReadAll(*log, 1, nullptr);
  REQUIRE(records.size() == expect_records);
  for (size_t i = 0; i < records.size(); ++i) {
    CHECK(records[i].first == i + 1);
    CHECK(records[i].second == testing::MakeRecord(0, static_cast<int>(i), 1024));
  }
  Lsn lsn = 0;
  REQUIRE(log->Append("after the tear", &lsn, nullptr));
  CHECK(lsn == expect_next);
  REQUIRE(testing::WaitDurable(*log, lsn, kWait) == 1);
  log.reset();
  OpenReport again;
  log = MustOpen(options, &again);
  CHECK(again.torn_tail_bytes_truncated == 0);
  CHECK(testing::ReadAll(*log, 1, nullptr).size() == expect_records + 1);
}

TEST_CASE("damage in the middle fails open, or is skipped with skip_corrupt",
          "[storage][segment_log]") {
  TempDir dir;
  LogOptions options;
  options.dir = dir.path();
  {
    auto log = MustOpen(options);
    AppendDurably(*log, 10);
  }
  const std::string file = testing::SegmentFiles(dir.path()).back();
  const uint64_t record5 = 4 * kFramed1K;  // byte offset of lsn 5
  SECTION("flipped payload byte") { testing::FlipByte(file, record5 + detail::kRecordHeaderSize + 3); }
  SECTION("flipped length byte (resync)") { testing::FlipByte(file, record5 + 5); }

  OpenReport report;
  std::string error;
  CHECK(OpenSegmentLog(options, &report, &error) == nullptr);
  CHECK_THAT(error, Catch::Contains(file) && Catch::Contains("byte offset " + std::to_string(record5)));

  options.skip_corrupt = true;
  auto log = MustOpen(options, &report);
  CHECK(report.corrupt_records_skipped == 1);
  CHECK(report.torn_tail_bytes_truncated == 0);
  std::string why;
  auto records = testing::ReadAll(*log, 1, &why);
  CHECK(why.empty());
  std::vector<Lsn> lsns;
  for (auto& [lsn, payload] : records) lsns.push_back(lsn);
  CHECK(lsns == std::vector<Lsn>{1, 2, 3, 4, 6, 7, 8, 9, 10});
  Lsn lsn = 0;
  REQUIRE(log->Append("after the damage", &lsn, nullptr));
  CHECK(lsn == 11);
}

}  // namespace
}  // namespace rta::storage
