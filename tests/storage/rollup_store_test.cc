#include "server/storage/rollup_store.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "tests/storage/storage_test_util.h"

namespace rta::storage {
namespace {

using testing::TempDir;

constexpr int64_t kDay = 86'400;
constexpr int64_t kNow = 1'800'000'000;  // 2027-01-15, a Friday; any fixed time works

// A store whose retention clock the test moves.
struct ClockedStore {
  std::atomic<int64_t> now{kNow};
  std::unique_ptr<RollupStore> store;

  void Open(const std::string& dir, RollupRetention retention = {}) {
    std::string error;
    store = RollupStore::Open(
        dir, retention, [this] { return now.load(); }, &error);
    INFO(error);
    REQUIRE(store != nullptr);
  }
};

RollupCell Events(uint64_t events, int64_t revenue_units = 0) {
  RollupCell cell;
  cell.counters.events = events;
  cell.counters.revenue_units = revenue_units;
  return cell;
}

// Every stored cell of a segment as bucket -> events.
std::map<int64_t, uint64_t> EventsBySegment(const RollupStore& store, Resolution resolution,
                                            const std::string& segment, int64_t from, int64_t to) {
  std::map<int64_t, uint64_t> out;
  std::string error;
  REQUIRE(store.Scan(
      resolution, segment, from, to,
      [&](int64_t bucket, const RollupCell& cell) {
        REQUIRE(out.count(bucket) == 0);  // each bucket once, merged
        out[bucket] = cell.counters.events;
      },
      &error));
  return out;
}

TEST_CASE("buckets are UTC minutes, hours and days, also before 1970", "[rollup]") {
  REQUIRE(BucketStart(Resolution::kMinute, 125) == 120);
  REQUIRE(BucketStart(Resolution::kHour, 7'199) == 3'600);
  REQUIRE(BucketStart(Resolution::kDay, kNow) == kNow - kNow % kDay);
  REQUIRE(BucketStart(Resolution::kMinute, -1) == -60);
  REQUIRE(BucketStart(Resolution::kDay, -kDay) == -kDay);
}

TEST_CASE("writes to one bucket merge and a scan returns each bucket once, in time order",
          "[rollup]") {
  TempDir dir;
  ClockedStore s;
  s.Open(dir.path());
  std::vector<RollupWrite> writes;
  // Three hours of one event per minute, written minute by minute into every resolution, and
  // a late event for the first minute written last.
  for (int64_t minute = 0; minute < 180; ++minute) {
    const int64_t t = kNow - 4 * 3'600 + minute * 60 + 7;
    for (Resolution r : {Resolution::kMinute, Resolution::kHour, Resolution::kDay}) {
      writes.push_back({r, t, "", Events(1, 12'345)});
    }
  }
  std::string error;
  REQUIRE(s.store->Write(writes, /*sync=*/false, &error));
  REQUIRE(s.store->Write({{Resolution::kMinute, kNow - 4 * 3'600, "", Events(1)}}, false, &error));

  const auto minutes = EventsBySegment(*s.store, Resolution::kMinute, "", kNow - 5 * 3'600, kNow);
  REQUIRE(minutes.size() == 180);
  REQUIRE(minutes.begin()->second == 2);  // the late event merged into its minute
  uint64_t total = 0;
  int64_t previous = INT64_MIN;
  for (const auto& [bucket, events] : minutes) {
    REQUIRE(bucket > previous);
    previous = bucket;
    total += events;
  }
  REQUIRE(total == 181);
  const auto hours = EventsBySegment(*s.store, Resolution::kHour, "", kNow - 5 * 3'600, kNow);
  uint64_t hour_total = 0;
  for (const auto& [bucket, events] : hours) hour_total += events;
  REQUIRE(hour_total == 180);
  REQUIRE(hours.size() >= 3);
  REQUIRE(hours.size() <= 4);  // three hours of minutes straddle at most four clock hours
  // The range is half-open and in bucket starts: [from, to).
  const int64_t second_minute = BucketStart(Resolution::kMinute, kNow - 4 * 3'600) + 60;
  REQUIRE(EventsBySegment(*s.store, Resolution::kMinute, "", second_minute, second_minute + 60)
              .size() == 1);
  // Revenue adds exactly.
  RollupCell day;
  REQUIRE(s.store->Scan(
      Resolution::kDay, "", kNow - 2 * kDay, kNow + kDay,
      [&](int64_t, const RollupCell& cell) { day.Merge(cell); }, &error));
  REQUIRE(day.counters.revenue_units == 180 * 12'345);
}

TEST_CASE("segments never mix, even when one name begins another", "[rollup]") {
  TempDir dir;
  ClockedStore s;
  s.Open(dir.path());
  std::string error;
  REQUIRE(s.store->Write({{Resolution::kHour, kNow - 100, "country=D", Events(1)},
                          {Resolution::kHour, kNow - 100, "country=DE", Events(10)},
                          {Resolution::kHour, kNow - 100, "country=DE", Events(5)},
                          {Resolution::kHour, kNow - 100, "", Events(16)}},
                         false, &error));
  const int64_t from = kNow - kDay, to = kNow + kDay;
  REQUIRE(EventsBySegment(*s.store, Resolution::kHour, "country=D", from, to).begin()->second == 1);
  REQUIRE(EventsBySegment(*s.store, Resolution::kHour, "country=DE", from, to).begin()->second ==
          15);
  REQUIRE(EventsBySegment(*s.store, Resolution::kHour, "", from, to).begin()->second == 16);
  REQUIRE(EventsBySegment(*s.store, Resolution::kHour, "country=F", from, to).empty());
  REQUIRE_FALSE(s.store->Write({{Resolution::kHour, kNow, std::string("a\0b", 3), Events(1)}},
                               false, &error));
  REQUIRE(error.find("NUL") != std::string::npos);
}

TEST_CASE("a segment scan reads every value of a dimension within the range, and only those",
          "[rollup]") {
  TempDir dir;
  ClockedStore s;
  s.Open(dir.path());
  std::string error;
  const int64_t day = BucketStart(Resolution::kDay, kNow);
  std::vector<RollupWrite> writes;
  for (int64_t d = 0; d < 5; ++d) {
    writes.push_back({Resolution::kDay, day - d * kDay, "page=/a", Events(1)});
    writes.push_back({Resolution::kDay, day - d * kDay, "page=/a/b", Events(10)});
    writes.push_back({Resolution::kDay, day - d * kDay, "pages=/x", Events(1000)});  // not "page="
    writes.push_back({Resolution::kDay, day - d * kDay, "country=DE", Events(100)});
  }
  REQUIRE(s.store->Write(writes, false, &error));
  std::map<std::string, uint64_t> events;
  std::map<std::string, int> cells;
  REQUIRE(s.store->ScanSegments(
      Resolution::kDay, "page=", day - 2 * kDay, day,
      [&](std::string_view segment, int64_t bucket, const RollupCell& cell) {
        REQUIRE(bucket >= day - 2 * kDay);
        REQUIRE(bucket < day);
        events[std::string(segment)] += cell.counters.events;
        ++cells[std::string(segment)];
      },
      &error));
  REQUIRE(events == std::map<std::string, uint64_t>{{"page=/a", 2}, {"page=/a/b", 20}});
  REQUIRE(cells == std::map<std::string, int>{{"page=/a", 2}, {"page=/a/b", 2}});
}

TEST_CASE("meta entries are written in the cells' batch and read back by key and prefix",
          "[rollup]") {
  TempDir dir;
  std::string error;
  {
    ClockedStore s;
    s.Open(dir.path());
    REQUIRE(s.store->Write({{Resolution::kHour, kNow, "", Events(1)}},
                           {{"applied", "7"}, {"v/a", "1"}, {"v/b", "2"}, {"w", "3"}}, true,
                           &error));
  }
  ClockedStore s;
  s.Open(dir.path());
  std::string value;
  bool found = false;
  REQUIRE(s.store->GetMeta("applied", &value, &found, &error));
  REQUIRE(found);
  REQUIRE(value == "7");
  REQUIRE(s.store->GetMeta("missing", &value, &found, &error));
  REQUIRE_FALSE(found);
  std::vector<std::string> keys;
  REQUIRE(s.store->ScanMeta(
      "v/", [&](std::string_view key, std::string_view) { keys.emplace_back(key); }, &error));
  REQUIRE(keys == std::vector<std::string>{"v/a", "v/b"});
  REQUIRE(EventsBySegment(*s.store, Resolution::kHour, "", kNow - kDay, kNow + kDay).size() == 1);
}

TEST_CASE("a restart keeps every cell", "[rollup]") {
  TempDir dir;
  std::map<int64_t, uint64_t> before;
  {
    ClockedStore s;
    s.Open(dir.path());
    std::string error;
    std::vector<RollupWrite> writes;
    for (int64_t h = 0; h < 48; ++h) {
      writes.push_back({Resolution::kHour, kNow - h * 3'600, "device=mobile", Events(h + 1)});
    }
    REQUIRE(s.store->Write(writes, /*sync=*/true, &error));
    before =
        EventsBySegment(*s.store, Resolution::kHour, "device=mobile", kNow - 3 * kDay, kNow + 1);
  }
  ClockedStore again;
  again.Open(dir.path());
  REQUIRE(before.size() == 48);
  REQUIRE(EventsBySegment(*again.store, Resolution::kHour, "device=mobile", kNow - 3 * kDay,
                          kNow + 1) == before);
}

TEST_CASE("retention hides expired cells at once and compaction deletes them, nothing else",
          "[rollup]") {
  TempDir dir;
  RollupRetention retention;
  retention.minute_s = 7 * kDay;
  retention.hour_s = 90 * kDay;
  const int64_t old_minute = kNow - 8 * kDay, kept_minute = kNow - 6 * kDay;
  const int64_t old_hour = kNow - 91 * kDay, kept_hour = kNow - 89 * kDay;
  {
    ClockedStore s;
    s.Open(dir.path(), retention);
    std::string error;
    REQUIRE(s.store->Write({{Resolution::kMinute, old_minute, "", Events(1)},
                            {Resolution::kMinute, kept_minute, "", Events(2)},
                            {Resolution::kHour, old_hour, "", Events(3)},
                            {Resolution::kHour, kept_hour, "", Events(4)},
                            {Resolution::kDay, old_hour, "", Events(5)}},
                           true, &error));
    // Expired cells are not answered even before compaction reaches them.
    const auto minutes = EventsBySegment(*s.store, Resolution::kMinute, "", kNow - 10 * kDay, kNow);
    REQUIRE(minutes.size() == 1);
    REQUIRE(minutes.begin()->second == 2);
    const auto hours = EventsBySegment(*s.store, Resolution::kHour, "", kNow - 100 * kDay, kNow);
    REQUIRE(hours.size() == 1);
    REQUIRE(hours.begin()->second == 4);
    REQUIRE(s.store->Compact(&error));
  }
  // Reopened with the clock far back, nothing would be hidden: what compaction deleted is gone,
  // and what it kept (a day is kept two years) is still there.
  ClockedStore back;
  back.now = kNow - 200 * kDay;
  back.Open(dir.path(), retention);
  REQUIRE(EventsBySegment(*back.store, Resolution::kMinute, "", kNow - 10 * kDay, kNow).size() ==
          1);
  REQUIRE(EventsBySegment(*back.store, Resolution::kHour, "", kNow - 100 * kDay, kNow).size() == 1);
  REQUIRE(EventsBySegment(*back.store, Resolution::kDay, "", kNow - 100 * kDay, kNow).size() == 1);
}

}  // namespace
}  // namespace rta::storage
