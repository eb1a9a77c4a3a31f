#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <chrono>
#include <thread>
#include <variant>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "server/aggregator/state_codec.h"
#include "tests/aggregator/test_util.h"

namespace rta::agg {
namespace {

using analytics::WINDOW_TOTAL;
using testing::Cat;
using testing::EventMix;
using testing::kStartMs;
using testing::Value;

// Small enough to copy quickly, large enough that no test id is evicted early.
AggregatorConfig CheckpointTestConfig() {
  AggregatorConfig config;
  config.dedupe_capacity_log2 = 18;
  config.dimension_cardinality_cap = 6;  // 12 countries: half fold into __other__
  config.top_k = 5;
  config.top_k_capacity = 16;  // 150 pages, 40 referrers, 30 campaigns: beyond capacity
  return config;
}

// Every series of two snapshots, value by value (changed_sequence aside: a restored aggregator
// reports everything as changed). Returns the first difference, or "".
std::string Difference(const Snapshot& a, const Snapshot& b) {
  if (a.points.size() != b.points.size()) {
    return Cat("series: ", static_cast<int64_t>(a.points.size()), " vs ",
               static_cast<int64_t>(b.points.size()));
  }
  for (size_t i = 0; i < a.points.size(); ++i) {
    const MetricPoint& p = a.points[i];
    const MetricPoint& q = b.points[i];
    const std::string where = Cat(p.name, "/", static_cast<int64_t>(p.window), "/", p.label_value);
    if (p.name != q.name || p.window != q.window || p.label_key != q.label_key ||
        p.label_value != q.label_value) {
      return Cat("series ", where, " vs ", q.name, "/", q.label_value);
    }
    if (std::memcmp(&p.value, &q.value, sizeof p.value) != 0) {
      return Cat(where, ": ", std::to_string(p.value), " vs ", std::to_string(q.value));
    }
    if (p.top != q.top) return Cat(where, ": top lists differ");
  }
  return "";
}

// Ingests `events` events spread over `seconds` of clock time, ticking every `tick_every` s.
void Feed(Aggregator& aggregator, ManualClock& clock, EventMix& mix, int seconds, int per_second,
          int tick_every) {
  for (int s = 0; s < seconds; ++s) {
    clock.AdvanceMs(1000);
    for (int i = 0; i < per_second; ++i) {
      clock.AdvanceMs(1);
      aggregator.Ingest(mix.Next(clock.NowMs()));
    }
    clock.AdvanceMs(-per_second);
    if (s % 7 == 0) aggregator.RecordSignal(SessionSignal::kRageClick, clock.NowMs() - 5000);
    if (s % tick_every == tick_every - 1) aggregator.Tick();
  }
}

std::unique_ptr<Aggregator> RestoreOrFail(const std::string& blob, const Clock& clock,
                                          uint64_t gap = 0) {
  std::string error;
  std::unique_ptr<Aggregator> restored = Aggregator::Restore(CheckpointTestConfig(), clock, blob, gap, &error);
  INFO(error);
  REQUIRE(restored != nullptr);
  return restored;
}

TEST_CASE("a restored aggregator reports every metric as the original does",
          "[aggregator][checkpoint][bulk]") {
  ManualClock clock(kStartMs);
  Aggregator original(CheckpointTestConfig(), clock);
  EventMix mix(7, "a");
  Feed(original, clock, mix, 3900, 6, 300);  // 65 minutes: both rings full
  const CheckpointResult checkpoint = original.Checkpoint({});
  CHECK(checkpoint.sequence == original.Latest()->sequence);
  CHECK(checkpoint.time_ms == clock.NowMs());

  std::unique_ptr<Aggregator> restored = RestoreOrFail(checkpoint.blob, clock);
  CHECK(restored->epoch() == original.epoch());
  CHECK(restored->Latest()->points.empty());

  auto a = original.Tick();
  auto b = restored->Tick();
  CHECK(b->sequence == a->sequence);
  CHECK(b->epoch == a->epoch);
  REQUIRE(Difference(*a, *b).empty());
  CHECK(Value(*a, "events_by_country", WINDOW_TOTAL, "__other__") > 0);
  CHECK(Value(*a, "page_load_ms_p99", WINDOW_TOTAL) > 0);
  CHECK(Value(*a, "sessions", analytics::WINDOW_1H) > 100);
  for (const MetricPoint& point : b->points) REQUIRE(point.changed_sequence == b->sequence);

  const AggregatorStats sa = original.stats();
  const AggregatorStats sb = restored->stats();
  CHECK(sa.dimension_values_folded == sb.dimension_values_folded);
  CHECK(sa.ranked_values_folded == sb.ranked_values_folded);
  CHECK(sa.key_dictionary_bytes == sb.key_dictionary_bytes);
  CHECK(sa.sessions_dropped == sb.sessions_dropped);
  CHECK(sa.ticks == sb.ticks);

  SECTION("the same further events keep them equal, and so does expiry") {
    EventMix more_a(8, "b");
    EventMix more_b(8, "b");
    for (int step = 0; step < 5; ++step) {
      ManualClock& c = clock;
      const int64_t at = c.NowMs();
      Feed(original, c, more_a, 30, 5, 1000);
      c.SetMs(at);
      Feed(*restored, c, more_b, 30, 5, 1000);
      a = original.Tick();
      b = restored->Tick();
      INFO("step " << step);
      REQUIRE(Difference(*a, *b).empty());
    }
    for (int minutes : {2, 3, 10, 61}) {
      clock.AdvanceMs(minutes * 60'000);
      a = original.Tick();
      b = restored->Tick();
      INFO("after " << minutes << " more minutes");
      REQUIRE(Difference(*a, *b).empty());
    }
    CHECK(Value(*a, "events_total", analytics::WINDOW_1H) == 0);
    CHECK(Value(*a, "events_total", WINDOW_TOTAL) > 0);
  }
}

TEST_CASE("a restore keeps the epoch and moves the sequence past the gap",
          "[aggregator][checkpoint]") {
  ManualClock clock(kStartMs);
  Aggregator original(CheckpointTestConfig(), clock);
  EventMix mix(3, "g");
  Feed(original, clock, mix, 20, 5, 5);
  const CheckpointResult checkpoint = original.Checkpoint({});
  std::unique_ptr<Aggregator> restored = RestoreOrFail(checkpoint.blob, clock, 500);
  const auto snapshot = restored->Tick();
  CHECK(snapshot->epoch == original.epoch());
  CHECK(snapshot->sequence == checkpoint.sequence + 501);
}

// The log of the replay tests: what the server appends (events with their ingest time) and,
// here only, when the original ticked, so that the replay can tick at the same clock times.
struct Logged {
  analytics::EventData event;
  int64_t ingest_ms = 0;
};
struct TickedAt {
  int64_t ms = 0;
};
using LogEntry = std::variant<Logged, TickedAt>;

void FeedAndLog(Aggregator& aggregator, ManualClock& clock, EventMix& mix, int seconds,
                std::vector<LogEntry>* log) {
  for (int s = 0; s < seconds; ++s) {
    clock.AdvanceMs(1000);
    for (int i = 0; i < 6; ++i) {
      analytics::EventData event = mix.Next(clock.NowMs());
      // A few re-sends: refused as duplicates, so never logged.
      if (i == 5 && s % 3 == 0) event.set_event_id(log->empty() ? "x" : event.event_id());
      if (aggregator.Ingest(event).outcome == IngestOutcome::kAccepted) {
        log->push_back(Logged{std::move(event), clock.NowMs()});
      }
    }
    if (s % 25 == 24) {
      aggregator.Tick();
      log->push_back(TickedAt{clock.NowMs()});
    }
  }
}

void Replay(Aggregator& aggregator, ManualClock& clock, const std::vector<LogEntry>& log) {
  for (const LogEntry& entry : log) {
    if (const auto* logged = std::get_if<Logged>(&entry)) {
      const IngestResult result = aggregator.ApplyLogged(logged->event, logged->ingest_ms);
      REQUIRE(result.outcome == IngestOutcome::kAccepted);
    } else {
      clock.SetMs(std::get<TickedAt>(entry).ms);
      aggregator.Tick();
    }
  }
}

TEST_CASE("restore plus a replay of the log after the cut equals the original",
          "[aggregator][checkpoint][bulk]") {
  ManualClock clock(kStartMs);
  Aggregator original(CheckpointTestConfig(), clock);
  EventMix mix(11, "r");
  std::vector<LogEntry> before_cut;
  std::vector<LogEntry> after_cut;
  FeedAndLog(original, clock, mix, 400, &before_cut);
  const CheckpointResult checkpoint = original.Checkpoint({});
  FeedAndLog(original, clock, mix, 400, &after_cut);
  // Past the 5-minute ring: some replayed seconds have left it by the end.
  clock.AdvanceMs(90'000);
  const auto expected = original.Tick();

  SECTION("from the checkpoint") {
    ManualClock replay_clock(checkpoint.time_ms);
    std::unique_ptr<Aggregator> restored = RestoreOrFail(checkpoint.blob, replay_clock);
    Replay(*restored, replay_clock, after_cut);
    replay_clock.SetMs(clock.NowMs());
    const auto replayed = restored->Tick();
    REQUIRE(Difference(*expected, *replayed).empty());
    CHECK(Value(*replayed, "events_total", WINDOW_TOTAL) ==
          static_cast<double>(std::count_if(before_cut.begin(), before_cut.end(),
                                            [](const LogEntry& e) {
                                              return std::holds_alternative<Logged>(e);
                                            }) +
                              std::count_if(after_cut.begin(), after_cut.end(),
                                            [](const LogEntry& e) {
                                              return std::holds_alternative<Logged>(e);
                                            })));
    // Re-sends of ids from before and after the cut are duplicates after the restart.
    for (const auto* log : {&before_cut, &after_cut}) {
      int checked = 0;
      for (const LogEntry& entry : *log) {
        const auto* logged = std::get_if<Logged>(&entry);
        if (logged == nullptr || logged->ingest_ms < clock.NowMs() - 500'000) continue;
        analytics::EventData again = logged->event;
        again.set_timestamp_ms(0);
        REQUIRE(restored->Ingest(again).outcome == IngestOutcome::kDuplicate);
        if (++checked == 50) break;
      }
      CHECK(checked == 50);
    }
  }

  SECTION("from an empty aggregator, the whole log") {
    ManualClock replay_clock(kStartMs);
    Aggregator replayed_from_start(CheckpointTestConfig(), replay_clock);
    Replay(replayed_from_start, replay_clock, before_cut);
    replay_clock.SetMs(checkpoint.time_ms);
    replayed_from_start.Tick();  // the checkpoint's tick
    Replay(replayed_from_start, replay_clock, after_cut);
    replay_clock.SetMs(clock.NowMs());
    REQUIRE(Difference(*expected, *replayed_from_start.Tick()).empty());
  }

  SECTION("replayed later, ticking every few records: the same counts") {
    // What the server does at start: the clock is "now", long after the events; ticks fall
    // wherever the replay is. Counts, HLLs and quantiles are the same; the 1m/5m windows are
    // empty at both ends by then.
    ManualClock replay_clock(clock.NowMs());
    std::unique_ptr<Aggregator> restored = RestoreOrFail(checkpoint.blob, replay_clock);
    int n = 0;
    for (const LogEntry& entry : after_cut) {
      if (const auto* logged = std::get_if<Logged>(&entry)) {
        REQUIRE(restored->ApplyLogged(logged->event, logged->ingest_ms).outcome ==
                IngestOutcome::kAccepted);
        if (++n % 500 == 0) restored->Tick();
      }
    }
    const auto replayed = restored->Tick();
    // Sessions expire by the clock (idle for about an hour), so a session idle close to that
    // may expire at another point of a late replay and count once more or less in TOTAL.
    CHECK(std::abs(Value(*replayed, "sessions", WINDOW_TOTAL) -
                   Value(*expected, "sessions", WINDOW_TOTAL)) <= 5);
    for (const char* metric : {"events_total", "page_views", "conversions", "revenue",
                               "unique_visitors", "page_load_ms_p50", "page_load_ms_p99",
                               "top_pages"}) {
      for (auto window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                          WINDOW_TOTAL}) {
        INFO(metric << " " << window);
        CHECK(Value(*replayed, metric, window) == Value(*expected, metric, window));
      }
    }
  }
}

TEST_CASE("an id accepted before the checkpoint is a duplicate after the restore",
          "[aggregator][checkpoint]") {
  ManualClock clock(kStartMs);
  Aggregator original(CheckpointTestConfig(), clock);
  REQUIRE(original.Ingest(testing::Event("kept", "click")).outcome == IngestOutcome::kAccepted);
  const CheckpointResult checkpoint = original.Checkpoint({});
  clock.AdvanceMs(30'000);
  std::unique_ptr<Aggregator> restored = RestoreOrFail(checkpoint.blob, clock);
  CHECK(restored->Ingest(testing::Event("kept", "click")).outcome == IngestOutcome::kDuplicate);
  CHECK(restored->Ingest(testing::Event("new", "click")).outcome == IngestOutcome::kAccepted);
  // The horizon still counts from the first acceptance.
  clock.AdvanceMs(CheckpointTestConfig().dedupe_horizon_seconds * 1000);
  CHECK(restored->Ingest(testing::Event("kept", "click")).outcome == IngestOutcome::kAccepted);
}

TEST_CASE("the de-dup section holds only the buckets in use, and a full table round-trips",
          "[aggregator][checkpoint]") {
  ManualClock clock(kStartMs);
  AggregatorConfig config = CheckpointTestConfig();
  config.dedupe_capacity_log2 = 14;  // 16,384 slots, 128 KiB raw
  const size_t raw_bytes = (size_t{1} << 14) * sizeof(uint64_t);
  // One event in a 16x larger table (2 MiB raw) makes a checkpoint larger only by the bitmap.
  auto one_event_checkpoint = [&](int capacity_log2) {
    AggregatorConfig with = config;
    with.dedupe_capacity_log2 = capacity_log2;
    Aggregator idle(with, clock);
    REQUIRE(idle.Ingest(testing::Event("one", "click")).outcome == IngestOutcome::kAccepted);
    return idle.Checkpoint({}).blob.size();
  };
  const size_t small = one_event_checkpoint(14), large = one_event_checkpoint(18);
  CHECK(large - small < raw_bytes / 4);  // raw: 2 MiB - 128 KiB more; bitmap: 2 KiB

  // Three quarters of the slots (the table's capacity): nearly every bucket has words.
  Aggregator full(config, clock);
  const size_t ids = (size_t{1} << 14) / 4 * 3;
  for (size_t i = 0; i < ids; ++i) {
    REQUIRE(full.Ingest(testing::Event(Cat("id-", static_cast<int64_t>(i)), "click")).outcome ==
            IngestOutcome::kAccepted);
  }
  const CheckpointResult checkpoint = full.Checkpoint({});
  CHECK(checkpoint.blob.size() > raw_bytes);
  std::string error;
  std::unique_ptr<Aggregator> restored = Aggregator::Restore(config, clock, checkpoint.blob, 0,
                                                             &error);
  REQUIRE(restored != nullptr);
  size_t duplicates = 0;
  for (size_t i = 0; i < ids; ++i) {
    duplicates += restored->Ingest(testing::Event(Cat("id-", static_cast<int64_t>(i)), "click"))
                      .outcome == IngestOutcome::kDuplicate;
  }
  CHECK(duplicates == ids);
}

TEST_CASE("checkpoints cut between ingest sections", "[aggregator][checkpoint][concurrency]") {
  ManualClock clock(kStartMs);
  Aggregator aggregator(CheckpointTestConfig(), clock);
  constexpr int kThreads = 4;
  constexpr int kMaxBatches = 4000;  // 128,000 ids in all: within the de-dup table's capacity
  constexpr int kBatch = 8;
  constexpr int kCheckpoints = 25;
  // logged[t]: events of thread t "appended to the log", bumped at the end of each section,
  // after its events were ingested; at_cut reads them as the log position of the cut. A cut
  // that ignored sections would catch a batch half-ingested or ingested but not yet logged.
  std::array<std::atomic<int64_t>, kThreads> logged{};
  std::atomic<bool> stop{false};
  std::atomic<int> running{kThreads};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kMaxBatches && !stop.load(); ++b) {
        auto section = aggregator.EnterIngest();
        for (int i = 0; i < kBatch; ++i) {
          const auto n = static_cast<int64_t>(b * kBatch + i);
          const IngestResult result =
              aggregator.Ingest(testing::Event(Cat("t", t, "-", n), "click"));
          if (result.outcome != IngestOutcome::kAccepted) std::abort();
        }
        logged[static_cast<size_t>(t)].store(static_cast<int64_t>((b + 1) * kBatch));
        section.End();
        // Spread the batches over the checkpoints (at least 200 ms in all): on an idle fast
        // machine the threads were done before the second checkpoint began.
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
      running.fetch_sub(1);
    });
  }
  int checkpoints = 0;
  int mid_run = 0;
  int64_t max_stall_us = 0;
  std::string failure;
  while (failure.empty() && checkpoints < kCheckpoints) {
    std::array<int64_t, kThreads> cut{};
    const bool threads_running = running.load() > 0;
    const CheckpointResult checkpoint = aggregator.Checkpoint([&] {
      for (int t = 0; t < kThreads; ++t) cut[static_cast<size_t>(t)] = logged[t].load();
    });
    ++checkpoints;
    mid_run += threads_running && running.load() > 0 ? 1 : 0;
    max_stall_us = std::max(max_stall_us, checkpoint.stall_us);
    int64_t total = 0;
    for (int64_t c : cut) total += c;
    std::string error;
    auto restored = Aggregator::Restore(CheckpointTestConfig(), clock, checkpoint.blob, 0, &error);
    if (!restored) {
      failure = error;
      break;
    }
    const double counted = Value(*restored->Tick(), "events_total", WINDOW_TOTAL);
    if (counted != static_cast<double>(total)) {
      failure = Cat("checkpoint ", checkpoints, ": the state holds ", static_cast<int64_t>(counted),
                    " events, the log ", total);
    }
    // The de-dup table at the cut: the last logged id of each thread is remembered, the next
    // one (logged after the cut, if at all) is not.
    for (int t = 0; t < kThreads && failure.empty(); ++t) {
      const int64_t c = cut[static_cast<size_t>(t)];
      if (c > 0 &&
          restored->Ingest(testing::Event(Cat("t", t, "-", c - 1), "click")).outcome !=
              IngestOutcome::kDuplicate) {
        failure = Cat("thread ", t, ": id ", c - 1, " logged before the cut is not remembered");
      }
      if (restored->Ingest(testing::Event(Cat("t", t, "-", c), "click")).outcome !=
          IngestOutcome::kAccepted) {
        failure = Cat("thread ", t, ": id ", c, " logged after the cut is remembered");
      }
    }
  }
  stop.store(true);
  for (std::thread& thread : threads) thread.join();
  INFO(failure);
  CHECK(failure.empty());
  WARN("checkpoints: " << checkpoints << ", " << mid_run
                       << " of them while threads were ingesting; longest stall "
                       << max_stall_us << " us");
  CHECK(mid_run >= 3);
  int64_t total = 0;
  for (const auto& count : logged) total += count.load();
  CHECK(Value(*aggregator.Tick(), "events_total", WINDOW_TOTAL) == static_cast<double>(total));
}

TEST_CASE("a damaged or foreign checkpoint is an error, never a crash",
          "[aggregator][checkpoint][bulk]") {
  ManualClock clock(kStartMs);
  AggregatorConfig config = CheckpointTestConfig();
  config.dedupe_capacity_log2 = 10;  // many restores below
  Aggregator original(config, clock);
  EventMix mix(5, "d");
  Feed(original, clock, mix, 120, 10, 10);
  const std::string blob = original.Checkpoint({}).blob;
  std::string error;
  auto restore = [&](std::string_view bytes, const AggregatorConfig& with) {
    error.clear();
    return Aggregator::Restore(with, clock, bytes, 0, &error);
  };
  REQUIRE(restore(blob, config) != nullptr);

  SECTION("truncated") {
    for (size_t size : {size_t{0}, size_t{7}, size_t{12}, size_t{20}, size_t{100},
                        blob.size() / 2, blob.size() - 9, blob.size() - 1}) {
      INFO(size);
      CHECK(restore(std::string_view(blob).substr(0, size), config) == nullptr);
      CHECK(!error.empty());
    }
  }
  SECTION("flipped bytes") {
    std::mt19937_64 rng(1);
    for (int i = 0; i < 40; ++i) {
      std::string damaged = blob;
      const size_t at = rng() % damaged.size();
      damaged[at] = static_cast<char>(damaged[at] ^ (1 + rng() % 255));
      INFO(at);
      CHECK(restore(damaged, config) == nullptr);
      CHECK(!error.empty());
    }
  }
  SECTION("damage behind a valid checksum: bounds checks, no crash") {
    // Flip bytes and re-seal the checksum, so the parser itself meets the damage. A restore may
    // succeed (a flipped counter is still a counter); then the aggregator must still work.
    std::mt19937_64 rng(2);
    int refused = 0;
    for (int i = 0; i < 150; ++i) {
      std::string damaged = blob;
      const size_t at = 12 + rng() % (damaged.size() - 20);
      damaged[at] = static_cast<char>(i % 4 == 0 ? 0xff : damaged[at] ^ (1 << (rng() % 8)));
      const uint64_t sum =
          detail::StateChecksum(std::string_view(damaged).substr(0, damaged.size() - 8));
      std::memcpy(damaged.data() + damaged.size() - 8, &sum, 8);
      auto restored = restore(damaged, config);
      if (restored == nullptr) {
        ++refused;
        CHECK(!error.empty());
      } else if (i % 10 == 0) {
        restored->Tick();
      }
    }
    WARN("refused " << refused << " of 150 re-sealed damaged checkpoints");
    CHECK(refused > 0);
  }
  SECTION("wrong version, not a checkpoint") {
    std::string other = blob;
    other[8] = 7;
    CHECK(restore(other, config) == nullptr);
    CHECK(error.find("version 7") != std::string::npos);
    CHECK(restore("hello, this is not a checkpoint at all", config) == nullptr);
    CHECK(error.find("not an aggregator checkpoint") != std::string::npos);
  }
  SECTION("incompatible config") {
    AggregatorConfig bigger = config;
    bigger.dedupe_capacity_log2 = 12;
    CHECK(restore(blob, bigger) == nullptr);
    CHECK(error.find("dedupe_capacity_log2") != std::string::npos);
    AggregatorConfig summaries = config;
    summaries.top_k_capacity = 100;
    CHECK(restore(blob, summaries) == nullptr);
    CHECK(error.find("top_k_capacity") != std::string::npos);
    AggregatorConfig fewer_sessions = config;
    fewer_sessions.max_sessions = 10;
    CHECK(restore(blob, fewer_sessions) == nullptr);
    CHECK(error.find("max_sessions") != std::string::npos);
    // Limits that do not shape the state may change.
    AggregatorConfig limits = config;
    limits.max_event_age_seconds = 1800;
    limits.top_k = 3;
    CHECK(restore(blob, limits) != nullptr);
  }
}

}  // namespace
}  // namespace rta::agg
