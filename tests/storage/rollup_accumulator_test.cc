#include "server/storage/rollup_accumulator.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <tuple>

namespace rta::storage {
namespace {

constexpr int64_t kT = 1'800'000'000'000;  // ms; 2027-01-15T08:00:00Z, an hour start

RollupEvent Event(RollupEvent::Kind kind, int64_t ms, uint64_t session = 0,
                  std::string_view country = "DE", std::string_view page = "/home") {
  RollupEvent event;
  event.event_ms = ms;
  event.kind = kind;
  event.session_hash = session;
  event.visitor_hash = session * 0x9e3779b97f4a7c15ull;
  event.dimensions = {country, "desktop", page, "", "google", "spring", "page_view"};
  return event;
}

using CellKey = std::tuple<Resolution, int64_t, std::string>;

std::map<CellKey, RollupCell> Cells(RollupAccumulator& accumulator) {
  std::map<CellKey, RollupCell> cells;
  for (RollupWrite& write : accumulator.TakeWrites()) {
    const CellKey key{write.resolution, write.time_s, write.segment};
    REQUIRE(cells.count(key) == 0);
    cells.emplace(key, std::move(write.cell));
  }
  return cells;
}

TEST_CASE("an event touches the minute total, the hour and day totals and marginals, and day pairs",
          "[rollup]") {
  RollupAccumulator accumulator({});
  RollupEvent purchase = Event(RollupEvent::Kind::kPurchase, kT + 61'000);
  purchase.value = 12.34;
  accumulator.Add(purchase);
  auto cells = Cells(accumulator);
  const size_t pairs = kRollupDimensionCount * (kRollupDimensionCount - 1);
  REQUIRE(cells.size() == 1 + 2 * (1 + kRollupDimensionCount) + pairs);
  const int64_t t = kT / 1000;
  const RollupCell& minute = cells.at({Resolution::kMinute, t + 60, ""});
  CHECK(minute.counters.events == 1);
  CHECK(minute.counters.conversions == 1);
  CHECK(minute.counters.revenue_units == 123'400);
  CHECK(cells.at({Resolution::kHour, t, "country=DE"}).counters.events == 1);
  CHECK(cells.at({Resolution::kHour, t, "referrer=(none)"}).counters.events == 1);
  // Visitors: the whole traffic's cells at the live windows' precision, a segment's lower.
  CHECK(minute.visitors().precision() == 14);
  CHECK(cells.at({Resolution::kHour, t, ""}).visitors().precision() == 14);
  CHECK(cells.at({Resolution::kHour, t, "country=DE"}).visitors().precision() == 12);
  CHECK(cells.at({Resolution::kDay, t - t % 86'400, "country=DE"}).visitors().precision() == 12);
  CHECK(cells.at({Resolution::kDay, t - t % 86'400, "utm_campaign=spring"}).counters.events == 1);
  CHECK(cells.count({Resolution::kMinute, t + 60, "country=DE"}) == 0);  // minutes: totals only
  // Pairs, in both orders, per day only, counters only.
  const int64_t day = t - t % 86'400;
  for (const std::string& key :
       {PairSegmentKey(0, "DE", 5, "spring"), PairSegmentKey(5, "spring", 0, "DE"),
        PairSegmentKey(2, "/home", 3, "(none)")}) {
    const RollupCell& pair = cells.at({Resolution::kDay, day, key});
    CHECK(pair.counters.revenue_units == 123'400);
    CHECK(pair.counters.conversions == 1);
    CHECK(pair.UniqueVisitors() == 0);
    CHECK(cells.count({Resolution::kHour, t, key}) == 0);
  }
  CHECK(accumulator.pending_cells() == 0);
  CHECK(accumulator.pending_pairs() == 0);
}

TEST_CASE("a segment's visitor precision is the limit's", "[rollup]") {
  RollupAccumulator::Limits limits;
  limits.segment_visitor_precision = 10;
  RollupAccumulator accumulator(limits);
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, /*session=*/1));
  auto cells = Cells(accumulator);
  const int64_t t = kT / 1000;
  CHECK(cells.at({Resolution::kHour, t, "country=DE"}).visitors().precision() == 10);
  CHECK(cells.at({Resolution::kHour, t, "country=DE"}).UniqueVisitors() == Approx(1).epsilon(0.01));
  CHECK(cells.at({Resolution::kHour, t, ""}).visitors().precision() == 14);
}

TEST_CASE("the whole traffic's minute visitor precision is the limit's and only the minutes'",
          "[rollup]") {
  RollupAccumulator::Limits limits;
  limits.minute_visitor_precision = 12;
  RollupAccumulator accumulator(limits);
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, /*session=*/1));
  auto cells = Cells(accumulator);
  const int64_t t = kT / 1000;
  const int64_t minute = t - t % 60;
  CHECK(cells.at({Resolution::kMinute, minute, ""}).visitors().precision() == 12);
  CHECK(cells.at({Resolution::kMinute, minute, ""}).UniqueVisitors() == Approx(1).epsilon(0.01));
  CHECK(cells.at({Resolution::kHour, t, ""}).visitors().precision() == 14);
  CHECK(cells.at({Resolution::kDay, t - t % 86'400, ""}).visitors().precision() == 14);
  CHECK(cells.at({Resolution::kHour, t, "country=DE"}).visitors().precision() ==
        VisitorSketch::kSegmentPrecision);
}

TEST_CASE("pair keys: no two value pairs share a key, and a prefix selects one first value",
          "[rollup]") {
  // Values may hold any byte but NUL; the first value's length keeps "a"+"bc" from "ab"+"c".
  CHECK(PairSegmentKey(0, "a", 2, "bc") != PairSegmentKey(0, "ab", 2, "c"));
  CHECK(PairSegmentKey(0, "a", 2, "b") != PairSegmentKey(2, "a", 0, "b"));
  const std::string long_value(kRollupMaxValueBytes, 'x');
  for (const std::string& first : {std::string("DE"), long_value, std::string(128, 'y')}) {
    const std::string key = PairSegmentKey(1, first, 4, "google");
    CHECK(key.find('\0') == std::string::npos);
    const std::string prefix = PairSegmentPrefix(1, first, 4);
    REQUIRE(key.rfind(prefix, 0) == 0);
    CHECK(key.substr(prefix.size()) == "google");
    // Pairs sort apart from single conditions (every dimension name is lowercase ASCII).
    CHECK(key < SegmentKey(0, "A"));
  }
  CHECK(PairSegmentPrefix(1, "D", 4) != PairSegmentPrefix(1, "DE", 4).substr(0, 6));
}

TEST_CASE("pair cells count sessions and bounces in the session's first cells", "[rollup]") {
  RollupAccumulator accumulator({});
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, 1));
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT + 60'000, 2));
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT + 120'000, 2, "FR"));
  auto cells = Cells(accumulator);
  const int64_t day = kT / 1000 - kT / 1000 % 86'400;
  const RollupCell& germany_desktop =
      cells.at({Resolution::kDay, day, PairSegmentKey(0, "DE", 1, "desktop")});
  CHECK(germany_desktop.counters.sessions == 2);
  CHECK(germany_desktop.counters.bounces == 1);  // session 1; session 2 went on
  CHECK(germany_desktop.counters.page_views == 2);
  const RollupCell& france_desktop =
      cells.at({Resolution::kDay, day, PairSegmentKey(0, "FR", 1, "desktop")});
  CHECK(france_desktop.counters.page_views == 1);
  CHECK(france_desktop.counters.sessions == 0);
}

TEST_CASE("a session counts once, in its first event's cells, and bounces only with one page view",
          "[rollup]") {
  RollupAccumulator accumulator({});
  // Session 1: one page view (a bounce). Session 2: two page views, the second 20 minutes
  // later in another country (the session stays with its first event's cells).
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, 1));
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT + 1000, 2));
  auto first = Cells(accumulator);  // written: the bounce of session 2 is stored as +1
  const int64_t hour = kT / 1000;
  CHECK(first.at({Resolution::kHour, hour, ""}).counters.bounces == 2);
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT + 1'200'000, 2, "FR"));
  accumulator.Add(Event(RollupEvent::Kind::kOther, kT + 1'260'000, 1));  // not a page view
  auto second = Cells(accumulator);
  // The later delta holds -1 bounce for session 2, in its first event's cells.
  RollupCell merged = first.at({Resolution::kHour, hour, ""});
  merged.Merge(second.at({Resolution::kHour, hour, ""}));
  CHECK(merged.counters.sessions == 2);
  CHECK(merged.counters.bounces == 1);
  CHECK(merged.counters.page_views == 3);
  CHECK(merged.counters.events == 4);
  const RollupCell& france = second.at({Resolution::kHour, hour, "country=FR"});
  CHECK(france.counters.page_views == 1);
  CHECK(france.counters.sessions == 0);
  CHECK(france.counters.bounces == 0);
  RollupCell germany = first.at({Resolution::kHour, hour, "country=DE"});
  germany.Merge(second.at({Resolution::kHour, hour, "country=DE"}));
  CHECK(germany.counters.sessions == 2);
  CHECK(germany.counters.bounces == 1);

  SECTION("after 30 minutes without an event the session id starts a new session") {
    accumulator.Add(Event(RollupEvent::Kind::kPageView, kT + 1'260'000 + 1'800'001, 1));
    auto third = Cells(accumulator);
    CHECK(third.at({Resolution::kHour, hour, ""}).counters.sessions == 1);
    CHECK(third.at({Resolution::kHour, hour, ""}).counters.bounces == 1);
  }
}

TEST_CASE("a purchase without a campaign counts under its session's campaign and referrer",
          "[rollup]") {
  RollupAccumulator accumulator({});
  RollupEvent landing = Event(RollupEvent::Kind::kPageView, kT, 7);
  landing.dimensions[3] = "google.com";  // referrer
  accumulator.Add(landing);
  RollupEvent purchase = Event(RollupEvent::Kind::kPurchase, kT + 60'000, 7);
  purchase.dimensions = {"DE", "desktop", "/checkout", "", "", "", "purchase"};
  purchase.value = 10;
  accumulator.Add(purchase);
  RollupEvent stranger = purchase;  // no session: its own (empty) values
  stranger.session_hash = 0;
  accumulator.Add(stranger);
  auto cells = Cells(accumulator);
  const int64_t hour = kT / 1000;
  CHECK(cells.at({Resolution::kHour, hour, "utm_campaign=spring"}).counters.conversions == 1);
  CHECK(cells.at({Resolution::kHour, hour, "referrer=google.com"}).counters.conversions == 1);
  CHECK(cells.at({Resolution::kHour, hour, "utm_campaign=(none)"}).counters.conversions == 1);
  CHECK(cells.at({Resolution::kHour, hour, "page=/checkout"}).counters.conversions == 2);
}

TEST_CASE("values beyond the cap per dimension count as __other__, admitted ones stay",
          "[rollup]") {
  RollupAccumulator::Limits limits;
  limits.max_values_per_dimension = 2;
  RollupAccumulator accumulator(limits);
  accumulator.Admit(2, "/a");  // from the store, as at a restart
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, 0, "DE", "/b"));
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, 0, "DE", "/c"));
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, 0, "DE", "/a"));
  // /b, and DE, desktop, google, spring, page_view (an empty referrer is "(none)", not a value).
  REQUIRE(accumulator.new_values().size() == 6);
  CHECK(accumulator.values_folded() == 1);
  auto cells = Cells(accumulator);
  const int64_t hour = kT / 1000;
  CHECK(cells.at({Resolution::kHour, hour, "page=/a"}).counters.page_views == 1);
  CHECK(cells.at({Resolution::kHour, hour, "page=/b"}).counters.page_views == 1);
  CHECK(cells.at({Resolution::kHour, hour, "page=__other__"}).counters.page_views == 1);
  CHECK(cells.count({Resolution::kHour, hour, "page=/c"}) == 0);
}

TEST_CASE("at the maximum the least recently touched sessions are forgotten, and count again",
          "[rollup]") {
  RollupAccumulator::Limits limits;
  limits.max_sessions = 2;
  RollupAccumulator accumulator(limits);
  for (uint64_t session : {1, 2, 3, 1}) {
    accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, session));
  }
  // 3 took the place of 1 (the older of 1 and 2), and 1 came back in place of 2.
  CHECK(accumulator.sessions_evicted() == 2);
  auto cells = Cells(accumulator);
  CHECK(cells.at({Resolution::kMinute, kT / 1000, ""}).counters.sessions == 4);
  CHECK(cells.at({Resolution::kMinute, kT / 1000, ""}).counters.events == 4);
}

// Applies `changes` to `stored` as the writer's batch does (deletions, then states).
void Store(const RollupAccumulator::SessionChanges& changes,
           std::map<uint64_t, std::string>* stored) {
  for (const uint64_t hash : changes.forgotten) stored->erase(hash);
  for (const auto& [hash, state] : changes.states) (*stored)[hash] = state;
}

TEST_CASE("a session that spans a restart counts once and keeps its acquisition", "[rollup]") {
  std::map<uint64_t, std::string> stored;
  const int64_t hour = kT / 1000;
  RollupCell total;
  RollupCell campaign;
  auto take = [&](RollupAccumulator& accumulator) {
    auto cells = Cells(accumulator);
    total.Merge(cells.at({Resolution::kHour, hour, ""}));
    if (cells.count({Resolution::kHour, hour, "utm_campaign=spring"}) != 0) {
      campaign.Merge(cells.at({Resolution::kHour, hour, "utm_campaign=spring"}));
    }
    Store(accumulator.TakeSessionChanges(), &stored);
  };
  {
    RollupAccumulator before({});
    before.Add(Event(RollupEvent::Kind::kPageView, kT, 1));  // lands from the spring campaign
    before.Add(Event(RollupEvent::Kind::kPageView, kT + 1'000, 2));
    take(before);
    CHECK(stored.size() == 2);
  }
  RollupAccumulator after({});
  std::string error;
  for (const auto& [hash, state] : stored) REQUIRE(after.RestoreSession(hash, state, &error));
  CHECK(after.session_count() == 2);
  // Session 1's second page view names no campaign: it counts under its session's, and takes
  // back the bounce its first page view counted. A new session 3 counts as one.
  RollupEvent later = Event(RollupEvent::Kind::kPurchase, kT + 60'000, 1);
  later.dimensions[5] = "";
  later.value = 5;
  after.Add(later);
  later.kind = RollupEvent::Kind::kPageView;
  after.Add(later);
  after.Add(Event(RollupEvent::Kind::kPageView, kT + 61'000, 3));
  take(after);
  CHECK(total.counters.sessions == 3);
  CHECK(total.counters.bounces == 2);  // 2 and 3
  CHECK(total.counters.page_views == 4);
  CHECK(campaign.counters.conversions == 1);
  CHECK(campaign.counters.sessions == 3);

  SECTION("without the stored table, the same events would count session 1 twice") {
    RollupAccumulator forgetful({});
    forgetful.Add(later);
    auto cells = Cells(forgetful);
    CHECK(cells.at({Resolution::kHour, hour, ""}).counters.sessions == 1);
  }
  SECTION("an expired session is deleted from the stored table") {
    RollupEvent much_later = Event(RollupEvent::Kind::kOther, kT + 3'600'000, 4);
    much_later.ingest_ms = kT + 3'600'000;
    after.Add(much_later);
    const RollupAccumulator::SessionChanges changes = after.TakeSessionChanges();
    CHECK(changes.forgotten.size() == 3);  // 1, 2 and 3: idle for more than 30 minutes
    REQUIRE(changes.states.size() == 1);
    CHECK(changes.states[0].first == 4);
    Store(changes, &stored);
    CHECK(stored.size() == 1);
  }
  SECTION("a stored session that does not decode is refused, and the table is unchanged") {
    RollupAccumulator fresh({});
    const std::string good = stored.at(1);
    CHECK_FALSE(fresh.RestoreSession(1, good.substr(0, good.size() - 1), &error));
    CHECK(error.rfind("stored session: ", 0) == 0);
    CHECK_FALSE(fresh.RestoreSession(1, good + "x", &error));
    CHECK(error == "stored session: trailing bytes");
    // By hand: first_ms 10, last_ms 5 (zigzag varints 20 and 10), ingest 0, 1 page view, seven
    // empty names. A last event before the first is refused; 10 to 20 is accepted.
    std::string backwards = std::string("\x14\x0a\x00\x01", 4) + std::string(7, '\0');
    CHECK_FALSE(fresh.RestoreSession(2, backwards, &error));
    CHECK(error == "stored session: times out of range");
    backwards[1] = 0x28;
    CHECK(fresh.RestoreSession(2, backwards, &error));
    fresh.ForgetSessions();
    CHECK(fresh.session_count() == 0);
    fresh.ForgetSessions();
    CHECK(fresh.RestoreSession(1, good, &error));
    CHECK(fresh.session_count() == 1);
  }
}

TEST_CASE("sessions interleaved far apart in event time keep their own acquisition", "[rollup]") {
  // A backfill over two streams: one stream is hours ahead of the other in event time. Session
  // 1's purchase, five minutes after its landing, must still find the session.
  RollupAccumulator accumulator({});
  accumulator.Add(Event(RollupEvent::Kind::kPageView, kT, 1));  // utm_campaign=spring
  RollupEvent ahead = Event(RollupEvent::Kind::kPageView, kT + 7'200'000, 2);
  ahead.dimensions[5] = "";
  accumulator.Add(ahead);
  RollupEvent purchase = Event(RollupEvent::Kind::kPurchase, kT + 300'000, 1);
  purchase.dimensions[5] = "";
  accumulator.Add(purchase);
  auto cells = Cells(accumulator);
  const RollupCell& spring = cells.at({Resolution::kHour, kT / 1000, "utm_campaign=spring"});
  CHECK(spring.counters.conversions == 1);
  CHECK(spring.counters.sessions == 1);
  CHECK(cells.count({Resolution::kHour, kT / 1000, "utm_campaign=(none)"}) == 0);
}

}  // namespace
}  // namespace rta::storage
