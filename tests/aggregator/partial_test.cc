#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "server/aggregator/state_codec.h"
#include "tests/aggregator/test_util.h"

namespace rta::agg {
namespace {

using analytics::WINDOW_TOTAL;
using testing::Cat;
using testing::Event;
using testing::EventMix;
using testing::kStartMs;
using testing::Value;

constexpr HashSeeds kClusterSeeds{0x5eed0001'9e3779b9ull, 0x5eed0002'7f4a7c15ull,
                                  0x5eed0003'bf58476dull};

AggregatorConfig ClusterConfig(bool export_partials, HashSeeds seeds = kClusterSeeds) {
  AggregatorConfig config;
  config.dedupe_capacity_log2 = 17;
  config.hash_seeds = seeds;
  config.export_partials = export_partials;
  return config;
}

// The partition of an event as the cluster computes it: its session, else its visitor, else
// its id.
size_t PartitionOf(const analytics::EventData& e, size_t partitions) {
  const std::string& key = !e.session_id().empty()   ? e.session_id()
                           : !e.visitor_id().empty() ? e.visitor_id()
                                                     : e.event_id();
  return std::hash<std::string>{}(key) % partitions;
}

// Every series of two snapshots, matched by name, window and label: values equal (revenue
// within 1e-9 relative: sums of the same values in another order), top lists equal. Returns
// the first difference, or "".
std::string Difference(const Snapshot& a, const Snapshot& b) {
  using Key = std::tuple<std::string, int, std::string>;
  std::map<Key, const MetricPoint*> theirs;
  for (const MetricPoint& q : b.points) theirs[{q.name, q.window, q.label_value}] = &q;
  if (a.points.size() != b.points.size()) {
    return Cat("series: ", static_cast<int64_t>(a.points.size()), " vs ",
               static_cast<int64_t>(b.points.size()));
  }
  for (const MetricPoint& p : a.points) {
    const std::string where = Cat(p.name, "/", static_cast<int64_t>(p.window), "/", p.label_value);
    const auto it = theirs.find({p.name, p.window, p.label_value});
    if (it == theirs.end()) return Cat(where, ": missing");
    const MetricPoint& q = *it->second;
    const bool same = p.name == "revenue" ? std::abs(p.value - q.value) <= 1e-9 * std::abs(p.value)
                                          : std::memcmp(&p.value, &q.value, sizeof p.value) == 0;
    if (!same) return Cat(where, ": ", std::to_string(p.value), " vs ", std::to_string(q.value));
    if (p.top != q.top) return Cat(where, ": top lists differ");
  }
  return "";
}

// Merges `partial` into `view` (an empty partial is "nothing to send").
void MergeOrFail(Aggregator& view, const std::string& partial) {
  if (partial.empty()) return;
  std::string error;
  const bool merged = view.MergePartial(partial, &error);
  INFO(error);
  REQUIRE(merged);
}

TEST_CASE("partials of three owners merged into a view equal one aggregator of every event",
          "[aggregator][partial]") {
  ManualClock clock(kStartMs);
  Aggregator reference(ClusterConfig(false), clock);
  std::vector<std::unique_ptr<Aggregator>> owners;
  for (int i = 0; i < 3; ++i)
    owners.push_back(std::make_unique<Aggregator>(ClusterConfig(true), clock));
  Aggregator view(ClusterConfig(true), clock);

  // EventMix stays below the capacities that would make a result depend on the order of
  // merges: 150 pages (Space-Saving summaries hold 200), 12 countries (dimension cap 100).
  EventMix mix(11, "e");
  uint64_t events = 0;
  uint64_t partials = 0;
  for (int s = 0; s < 200; ++s) {
    clock.AdvanceMs(1000);
    for (int i = 0; i < 30; ++i) {
      clock.AdvanceMs(7);
      const analytics::EventData e = mix.Next(clock.NowMs());
      REQUIRE(reference.Ingest(e).outcome == IngestOutcome::kAccepted);
      Aggregator& owner = *owners[PartitionOf(e, owners.size())];
      REQUIRE(owner.ApplyReplicated(e, clock.NowMs()).outcome == IngestOutcome::kAccepted);
      ++events;
    }
    clock.AdvanceMs(-210);
    if (s % 13 == 0) {  // signals travel too (RecordSignal: the clock's time key)
      reference.RecordSignal(SessionSignal::kRageClick, clock.NowMs() - 4000);
      owners[static_cast<size_t>(s) % 3]->RecordSignal(SessionSignal::kRageClick,
                                                       clock.NowMs() - 4000);
    }
    if (s == 150) {
      // One second with 7000 distinct visitors: its delta's HyperLogLog goes out raw.
      for (int v = 0; v < 7000; ++v) {
        analytics::EventData e = Event(Cat("burst", v), "click", clock.NowMs(), Cat("bv", v));
        REQUIRE(reference.Ingest(e).outcome == IngestOutcome::kAccepted);
        REQUIRE(owners[1]->ApplyReplicated(e, clock.NowMs()).outcome == IngestOutcome::kAccepted);
        ++events;
      }
    }
    if (s % 10 == 9) reference.Tick();
    // Each owner publishes every 5 s, at its own offset; the view merges at once.
    const size_t turn = static_cast<size_t>(s) % 5;
    if (turn < owners.size()) {
      const std::string partial = owners[turn]->TakePartial({});
      partials += partial.empty() ? 0 : 1;
      MergeOrFail(view, partial);
    }
  }
  for (auto& owner : owners) MergeOrFail(view, owner->TakePartial({}));

  const auto expected = reference.Tick();
  const auto merged = view.Tick();
  INFO(partials << " partials of " << events << " events");
  CHECK(Value(*merged, "events_total", WINDOW_TOTAL) == static_cast<double>(events));
  CHECK(Value(*merged, "unique_visitors", WINDOW_TOTAL) > 7000);
  CHECK(Value(*merged, "rage_clicks", WINDOW_TOTAL) > 0);
  CHECK(Value(*merged, "page_load_ms_p50", WINDOW_TOTAL) > 0);
  CHECK(Value(*merged, "bounce_rate", WINDOW_TOTAL) > 0);
  CHECK(Difference(*expected, *merged) == "");
  // The owners' own windows stay empty: they only export.
  CHECK(Value(*owners[0]->Tick(), "events_total", WINDOW_TOTAL) == 0);
}

TEST_CASE("live segments: owners' segment partials merged by key equal one aggregator's segment",
          "[aggregator][partial][segment]") {
  ManualClock clock(kStartMs);
  Aggregator reference(ClusterConfig(false), clock);
  std::vector<std::unique_ptr<Aggregator>> owners;
  for (int i = 0; i < 3; ++i)
    owners.push_back(std::make_unique<Aggregator>(ClusterConfig(true), clock));
  Aggregator view(ClusterConfig(false), clock);

  // The segment under different ids on every aggregator (as on the nodes of a cluster): the
  // key names it, the ids do not.
  const std::vector<SegmentCondition> mobile_c3 = {{0, "C3"}, {1, "mobile"}};
  std::vector<SegmentCondition> keyed = mobile_c3;
  const std::string key = SegmentKeyOf(&keyed);
  std::vector<SegmentCondition> parsed;
  REQUIRE(ParseSegmentKey(key, &parsed));
  CHECK(parsed == keyed);
  const int reference_id = reference.OpenSegment(mobile_c3);
  REQUIRE(owners[1]->OpenSegment({{1, "tablet"}}) >= 0);
  std::map<const Aggregator*, int> owner_ids;
  for (auto& owner : owners) owner_ids[owner.get()] = owner->OpenSegment(parsed);
  REQUIRE(view.OpenSegment({{0, "C1"}}) >= 0);
  const int view_id = view.OpenSegment(mobile_c3);
  REQUIRE(view_id >= 0);

  auto exchange = [&](Aggregator& owner) {
    std::vector<Aggregator::SegmentPartial> segments;
    MergeOrFail(view, owner.TakePartial({}, &segments));
    for (const Aggregator::SegmentPartial& segment : segments) {
      if (segment.id != owner_ids[&owner]) continue;  // the tablet segment: not the view's
      std::string error;
      INFO(error);
      REQUIRE(view.MergeSegmentPartial(view_id, segment.partial, &error));
    }
  };
  EventMix mix(23, "s");
  for (int s = 0; s < 120; ++s) {
    clock.AdvanceMs(1000);
    for (int i = 0; i < 40; ++i) {
      const analytics::EventData e = mix.Next(clock.NowMs());
      REQUIRE(reference.Ingest(e).outcome == IngestOutcome::kAccepted);
      REQUIRE(owners[PartitionOf(e, owners.size())]->ApplyReplicated(e, clock.NowMs()).outcome ==
              IngestOutcome::kAccepted);
    }
    if (s % 10 == 9) reference.Tick();
    if (static_cast<size_t>(s) % 3 < owners.size()) exchange(*owners[static_cast<size_t>(s) % 3]);
  }
  for (auto& owner : owners) exchange(*owner);

  reference.Tick();
  view.Tick();
  const auto expected = reference.SegmentLatest(reference_id);
  const auto merged = view.SegmentLatest(view_id);
  REQUIRE(expected != nullptr);
  REQUIRE(merged != nullptr);
  CHECK(Value(*merged, "events_total", WINDOW_TOTAL) > 20);
  CHECK(Difference(*expected, *merged) == "");
  // Not open in the view: refused with a message, nothing merged.
  std::string error;
  CHECK_FALSE(view.MergeSegmentPartial(40, "x", &error));
  CHECK(error == "live segment 40 is not open");
}

TEST_CASE("an event re-sent to its owner after its partial was taken counts once",
          "[aggregator][partial]") {
  ManualClock clock(kStartMs);
  Aggregator owner(ClusterConfig(true), clock);
  Aggregator view(ClusterConfig(true), clock);
  const analytics::EventData e = Event("e1", "purchase", kStartMs - 1000, "v1", "s1");
  CHECK(owner.ApplyReplicated(e, kStartMs).outcome == IngestOutcome::kAccepted);
  MergeOrFail(view, owner.TakePartial({}));
  clock.AdvanceMs(5000);
  CHECK(owner.ApplyReplicated(e, clock.NowMs()).outcome == IngestOutcome::kDuplicate);
  CHECK(owner.TakePartial({}).empty());
  CHECK(Value(*view.Tick(), "events_total", WINDOW_TOTAL) == 1);
  CHECK(Value(*view.Latest(), "conversions", WINDOW_TOTAL) == 1);
}

TEST_CASE("ApplyReplicated with count false only remembers the id", "[aggregator][partial]") {
  ManualClock clock(kStartMs);
  Aggregator owner(ClusterConfig(true), clock);
  Aggregator view(ClusterConfig(true), clock);
  const analytics::EventData warm = Event("w1", "page_view", kStartMs, "v1", "s1");
  CHECK(owner.ApplyReplicated(warm, kStartMs, false).outcome == IngestOutcome::kAccepted);
  CHECK(owner.ApplyReplicated(warm, kStartMs, false).outcome == IngestOutcome::kDuplicate);
  CHECK(owner.TakePartial({}).empty());
  CHECK(owner.ApplyReplicated(warm, kStartMs).outcome == IngestOutcome::kDuplicate);
  CHECK(owner.ApplyReplicated(Event("w2", "page_view", kStartMs, "v1", "s1"), kStartMs).outcome ==
        IngestOutcome::kAccepted);
  MergeOrFail(view, owner.TakePartial({}));
  CHECK(Value(*view.Tick(), "events_total", WINDOW_TOTAL) == 1);
}

TEST_CASE("TakePartial on an idle aggregator returns nothing but still cuts",
          "[aggregator][partial]") {
  ManualClock clock(kStartMs);
  Aggregator owner(ClusterConfig(true), clock);
  int cuts = 0;
  CHECK(owner.TakePartial([&] { ++cuts; }).empty());
  CHECK(cuts == 1);
  owner.Tick();
  CHECK(owner.TakePartial([&] { ++cuts; }).empty());
  CHECK(cuts == 2);
}

TEST_CASE("a partial from an aggregator with other hash seeds is refused",
          "[aggregator][partial]") {
  ManualClock clock(kStartMs);
  Aggregator stranger(ClusterConfig(true, HashSeeds{1, 2, 3}), clock);
  Aggregator view(ClusterConfig(true), clock);
  REQUIRE(stranger.ApplyReplicated(Event("x", "click", kStartMs, "v"), kStartMs).outcome ==
          IngestOutcome::kAccepted);
  const std::string partial = stranger.TakePartial({});
  REQUIRE(!partial.empty());
  std::string error;
  CHECK_FALSE(view.MergePartial(partial, &error));
  CHECK_THAT(error, Catch::Contains("seeds"));
}

// A partial of a few hundred varied events, as an owner publishes it: two deltas (two ingest
// threads, so two shards), so that damage in the second must not let the first through.
std::string SamplePartial(ManualClock& clock) {
  Aggregator owner(ClusterConfig(true), clock);
  EventMix mix(5, "p");
  std::vector<analytics::EventData> events;
  for (int i = 0; i < 300; ++i) events.push_back(mix.Next(clock.NowMs()));
  for (int i = 0; i < 150; ++i) owner.ApplyReplicated(events[i], clock.NowMs());
  std::thread([&] {
    for (int i = 150; i < 300; ++i) owner.ApplyReplicated(events[i], clock.NowMs());
  }).join();
  owner.RecordSignal(SessionSignal::kCartAbandonment, clock.NowMs());
  return owner.TakePartial({});
}

// Changes behind a valid checksum, each followed by a Tick() to see that a refusal applied
// nothing: 3,000, or 500 in a sanitizer build, where each Tick() takes about 50 ms (the 3,000
// took 115 s of the ASan suite; the fuzzers search the decoder for crashes far longer).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kCheckedDamages = 500;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr int kCheckedDamages = 500;
#else
constexpr int kCheckedDamages = 3000;
#endif
#else
constexpr int kCheckedDamages = 3000;
#endif

TEST_CASE("a damaged partial is refused and changes nothing", "[aggregator][partial][bulk]") {
  ManualClock clock(kStartMs);
  Aggregator view(ClusterConfig(true), clock);
  const std::string partial = SamplePartial(clock);
  REQUIRE(partial.size() > 1000);
  // Something in the windows already, so that "unchanged" means something.
  MergeOrFail(view, partial);
  const auto before = view.Tick();
  REQUIRE(Value(*before, "events_total", WINDOW_TOTAL) == 300);

  std::string error;
  SECTION("wrong magic or version") {
    std::string bad = partial;
    bad[0] = 'X';
    CHECK_FALSE(view.MergePartial(bad, &error));
    CHECK_THAT(error, Catch::Contains("RTAPART"));
    bad = partial;
    bad[8] = 2;
    CHECK_FALSE(view.MergePartial(bad, &error));
    CHECK_THAT(error, Catch::Contains("version 2"));
    CHECK_FALSE(view.MergePartial("", &error));
  }
  SECTION("every truncation") {
    for (size_t length = 0; length < partial.size(); ++length) {
      error.clear();
      if (view.MergePartial(std::string_view(partial).substr(0, length), &error) || error.empty()) {
        FAIL("a partial cut to " << length << " bytes was not refused with an error");
      }
    }
  }
  SECTION("random bit flips and byte changes") {
    std::mt19937_64 rng(99);
    for (int i = 0; i < 3000; ++i) {
      std::string bad = partial;
      const size_t at = rng() % bad.size();
      bad[at] = static_cast<char>(bad[at] ^ (i % 2 == 0 ? 1 << (rng() % 8) : 1 + rng() % 255));
      error.clear();
      if (view.MergePartial(bad, &error) || error.empty()) {
        FAIL("a change at byte " << at << " was not refused with an error");
      }
    }
  }
  SECTION("damage behind a valid checksum reaches the decoder's checks") {
    // The checksum recomputed after each change: the decoder itself must refuse (or accept a
    // still well-formed partial) without crashing, and a refusal applies nothing, not even the
    // deltas before the damage. A second view takes these, so that `view` stays comparable.
    Aggregator other(ClusterConfig(true), clock);
    double total = Value(*other.Tick(), "events_total", WINDOW_TOTAL);
    int refused = 0;
    std::mt19937_64 rng(7);
    for (int i = 0; i < kCheckedDamages; ++i) {
      std::string bad = partial.substr(0, partial.size() - 8);
      const size_t at = 20 + rng() % (bad.size() - 20);  // past magic, version and seeds
      bad[at] = static_cast<char>(bad[at] ^ (1 + rng() % 255));
      detail::StateWriter(&bad).U64(detail::StateChecksum(bad));
      error.clear();
      const bool merged = other.MergePartial(bad, &error);
      const double now_total = Value(*other.Tick(), "events_total", WINDOW_TOTAL);
      if (merged) {
        total = now_total;  // still well-formed (a count, a time or a text changed)
        continue;
      }
      ++refused;
      if (error.empty() || now_total != total) {
        FAIL("change at byte " << at << ": refused with '" << error << "', total " << now_total
                               << " instead of " << total);
      }
    }
    // Counts, hashes, lengths and flags are most of the bytes: most changes must be caught.
    CHECK(refused > kCheckedDamages / 10);
  }
  CHECK(Difference(*before, *view.Tick()) == "");
}

TEST_CASE("partials taken while threads ingest hold exactly what was ingested before each cut",
          "[aggregator][partial][concurrency]") {
  const int threads = GENERATE(2, 4);
  ManualClock clock(kStartMs);
  Aggregator owner(ClusterConfig(true), clock);
  Aggregator view(ClusterConfig(true), clock);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ingested{0};  // events counted, incremented inside their section
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const Aggregator::IngestSection section = owner.EnterIngest();
        const analytics::EventData e =
            Event(Cat("t", t, "-", i), i % 3 == 0 ? "page_view" : "click", kStartMs - i % 100,
                  Cat("v", i % 500), Cat("s", t, "-", i % 40));
        if (owner.ApplyReplicated(e, kStartMs).outcome == IngestOutcome::kAccepted) {
          ingested.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  // Every partial must hold exactly the events counted before its cut.
  int partials = 0;
  bool exact = true;
  uint64_t at_cut = 0;
  // 300 ms and at least 6 partials (TSan is slow to take and merge them), 20 s at the most.
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if ((elapsed > std::chrono::milliseconds(300) && partials > 5) ||
        elapsed > std::chrono::seconds(20)) {
      break;
    }
    const std::string partial =
        owner.TakePartial([&] { at_cut = ingested.load(std::memory_order_relaxed); });
    if (!partial.empty()) {
      std::string error;
      REQUIRE(view.MergePartial(partial, &error));
      ++partials;
      exact =
          exact && Value(*view.Tick(), "events_total", WINDOW_TOTAL) == static_cast<double>(at_cut);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  stop.store(true);
  for (auto& writer : writers) writer.join();
  MergeOrFail(view, owner.TakePartial({}));
  INFO(partials << " partials while " << threads << " threads ingested " << ingested.load());
  CHECK(partials > 5);
  CHECK(exact);
  CHECK(Value(*view.Tick(), "events_total", WINDOW_TOTAL) == static_cast<double>(ingested.load()));
}

}  // namespace
}  // namespace rta::agg
