#include "server/storage/rollup_delta.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "server/storage/rollup_accumulator.h"

namespace rta::storage {
namespace {

constexpr int64_t kFlushStartMs = 1'800'000'000'000;  // ms; 2027-01-15T08:00:00Z, an hour start

// What one owner's flush ships: the cells and pairs of a few sessions' events.
std::vector<RollupWrite> FlushWrites() {
  RollupAccumulator accumulator({});
  const char* countries[] = {"DE", "FR", "US"};
  for (uint64_t i = 1; i <= 300; ++i) {
    RollupEvent event;
    event.event_ms = kFlushStartMs + static_cast<int64_t>(i) * 7'000;
    event.kind = i % 10 == 0  ? RollupEvent::Kind::kPurchase
                 : i % 3 == 0 ? RollupEvent::Kind::kPageLoad
                              : RollupEvent::Kind::kPageView;
    event.value = i % 10 == 0 ? 19.99 : static_cast<double>(i);
    event.session_hash = 1 + i / 4;
    event.visitor_hash = (1 + i / 8) * 0x9e3779b97f4a7c15ull;
    event.dimensions = {countries[i % 3], "mobile", "/p", "", "news", "spring", "page_view"};
    accumulator.Add(event);
  }
  return accumulator.TakeWrites();
}

std::string EncodeRun(const std::vector<RollupWrite>& writes) {
  std::string bytes;
  for (const RollupWrite& write : writes) AppendRollupWrite(write, &bytes);
  return bytes;
}

TEST_CASE("rollup delta: writes round-trip, and a run cut between writes decodes in parts",
          "[rollup_delta]") {
  const std::vector<RollupWrite> writes = FlushWrites();
  REQUIRE(writes.size() > 40);
  const std::string bytes = EncodeRun(writes);

  RollupRun run;
  std::string error;
  REQUIRE(DecodeRollupRun(bytes, &run, &error));
  CHECK(run.state.empty());
  const std::vector<RollupWrite>& decoded = run.writes;
  REQUIRE(decoded.size() == writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    CHECK(decoded[i].resolution == writes[i].resolution);
    CHECK(decoded[i].time_s == writes[i].time_s);
    CHECK(decoded[i].segment == writes[i].segment);
    CHECK(decoded[i].cell.Encode() == writes[i].cell.Encode());
  }

  // Two runs (as two records of one flush) append to the same list.
  const size_t half = writes.size() / 2;
  const std::vector<RollupWrite> first(writes.begin(), writes.begin() + half);
  const std::vector<RollupWrite> second(writes.begin() + half, writes.end());
  RollupRun joined;
  REQUIRE(DecodeRollupRun(EncodeRun(first), &joined, &error));
  REQUIRE(DecodeRollupRun(EncodeRun(second), &joined, &error));
  REQUIRE(joined.writes.size() == writes.size());
  CHECK(EncodeRun(joined.writes) == bytes);
}

TEST_CASE("rollup delta: truncated or damaged bytes are refused with a message naming the write",
          "[rollup_delta]") {
  const std::vector<RollupWrite> writes = FlushWrites();
  const std::string one = EncodeRun({writes.front()});
  // Every cut inside a write fails (a cut at its end is a shorter, valid run).
  for (size_t cut = 1; cut < one.size(); ++cut) {
    RollupRun decoded;
    std::string error;
    INFO("cut at " << cut << " of " << one.size());
    CHECK_FALSE(DecodeRollupRun(std::string_view(one).substr(0, cut), &decoded, &error));
    CHECK(error.find("rollup delta entry 0") != std::string::npos);
  }

  std::string bad_resolution = EncodeRun({writes[0], writes[1]});
  bad_resolution[one.size()] = 7;  // the second write's resolution
  RollupRun decoded;
  std::string error;
  CHECK_FALSE(DecodeRollupRun(bad_resolution, &decoded, &error));
  CHECK(error == "rollup delta entry 1: unknown resolution 7");
  CHECK(decoded.writes.size() == 1);

  RollupWrite with_nul = writes.front();
  with_nul.segment = std::string("country=D\0E", 11);
  decoded = {};
  CHECK_FALSE(DecodeRollupRun(EncodeRun({with_nul}), &decoded, &error));
  CHECK(error.find("NUL") != std::string::npos);
}

TEST_CASE(
    "rollup delta: an owner's session changes and admitted values round-trip in order "
    "beside its cells and restore an accumulator that counts a session once",
    "[rollup_delta]") {
  // An owner folds the first half of some sessions and ships them with its history state.
  RollupAccumulator owner({});
  auto event = [](uint64_t session, int64_t offset_ms, const char* campaign) {
    RollupEvent e;
    e.event_ms = kFlushStartMs + offset_ms;
    e.kind = RollupEvent::Kind::kPageView;
    e.session_hash = session;
    e.visitor_hash = session * 0x9e3779b97f4a7c15ull;
    e.dimensions = {"DE", "mobile", "/p", "", "news", campaign, "page_view"};
    return e;
  };
  for (uint64_t s = 1; s <= 20; ++s) owner.Add(event(s, static_cast<int64_t>(s) * 1000, "spring"));
  std::string bytes;
  for (const RollupWrite& write : owner.TakeWrites()) AppendRollupWrite(write, &bytes);
  for (const auto& [dimension, value] : owner.new_values()) {
    AppendRollupValueAdmitted(dimension, value, &bytes);
  }
  RollupAccumulator::SessionChanges changes = owner.TakeSessionChanges();
  REQUIRE(changes.states.size() == 20);
  AppendRollupSessionForgotten(99, &bytes);
  for (const auto& [hash, state] : changes.states) AppendRollupSessionState(hash, state, &bytes);

  RollupRun run;
  std::string error;
  REQUIRE(DecodeRollupRun(bytes, &run, &error));
  CHECK_FALSE(run.writes.empty());
  REQUIRE(run.state.size() == owner.new_values().size() + 1 + 20);
  size_t at = 0;
  for (const auto& [dimension, value] : owner.new_values()) {
    CHECK(run.state[at].kind == RollupStateEntry::Kind::kValueAdmitted);
    CHECK(run.state[at].dimension == dimension);
    CHECK(run.state[at].bytes == value);
    ++at;
  }
  CHECK(run.state[at].kind == RollupStateEntry::Kind::kSessionForgotten);
  CHECK(run.state[at].session_hash == 99);
  ++at;
  for (const auto& [hash, state] : changes.states) {
    CHECK(run.state[at].kind == RollupStateEntry::Kind::kSessionState);
    CHECK(run.state[at].session_hash == hash);
    CHECK(run.state[at].bytes == state);
    ++at;
  }

  // A next owner restored from them: the sessions' second page views are not new sessions,
  // and take back the bounce of their first; and their events without a campaign keep it.
  RollupAccumulator next({});
  for (const RollupStateEntry& entry : run.state) {
    if (entry.kind == RollupStateEntry::Kind::kValueAdmitted) {
      next.Admit(entry.dimension, entry.bytes);
    } else if (entry.kind == RollupStateEntry::Kind::kSessionState) {
      REQUIRE(next.RestoreSession(entry.session_hash, entry.bytes, &error));
    }
  }
  CHECK(next.session_count() == 20);
  for (uint64_t s = 1; s <= 20; ++s) next.Add(event(s, static_cast<int64_t>(s) * 1000 + 500, ""));
  RollupCounters totals, spring;
  for (const RollupWrite& write : next.TakeWrites()) {
    if (write.resolution != Resolution::kDay) continue;
    if (write.segment.empty()) totals = write.cell.counters;
    if (write.segment == "utm_campaign=spring") spring = write.cell.counters;
  }
  CHECK(totals.sessions == 0);
  CHECK(totals.bounces == static_cast<uint64_t>(-20));  // modulo 2^64: 20 bounces taken back
  CHECK(totals.page_views == 20);
  CHECK(spring.page_views == 20);
}

TEST_CASE("rollup delta: damaged state entries are refused with a message naming the entry",
          "[rollup_delta]") {
  std::string error;
  RollupRun run;
  std::string unknown_dimension;
  AppendRollupValueAdmitted(kRollupDimensionCount, "x", &unknown_dimension);
  CHECK_FALSE(DecodeRollupRun(unknown_dimension, &run, &error));
  CHECK(error.find("rollup delta entry 0: an admitted value of unknown dimension") == 0);

  std::string empty_value;
  AppendRollupValueAdmitted(0, "", &empty_value);
  CHECK_FALSE(DecodeRollupRun(empty_value, &run, &error));
  CHECK(error.find("an admitted value of 0 bytes") != std::string::npos);

  const std::string unknown_tag = "\x13";
  CHECK_FALSE(DecodeRollupRun(unknown_tag, &run, &error));
  CHECK(error == "rollup delta entry 0: unknown entry tag 19");

  std::string state;
  AppendRollupSessionState(7, "abcdef", &state);
  for (size_t cut = 1; cut < state.size(); ++cut) {
    INFO("cut at " << cut);
    RollupRun cut_run;
    CHECK_FALSE(DecodeRollupRun(std::string_view(state).substr(0, cut), &cut_run, &error));
    CHECK(cut_run.state.empty());
  }
}

}  // namespace
}  // namespace rta::storage
