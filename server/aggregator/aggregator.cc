#include "server/aggregator/aggregator.h"
#include "server/aggregator/latest_value.h"

#include <array>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "server/aggregator/dedupe_table.h"
#include "server/aggregator/event_validation.h"
#include "server/aggregator/hash.h"
#include "server/aggregator/metric_catalog.h"
#include "server/aggregator/shard_delta.h"
#include "server/aggregator/snapshot_builder.h"
#include "server/aggregator/time_key.h"
#include "server/aggregator/utf8.h"
#include "server/aggregator/windowed_state.h"

namespace rta::agg {
namespace {

// Enough for one shard per ingest thread of any sensible server (workers + session threads);
// more threads share shards safely (see Aggregator::Impl::Claim).
constexpr uint32_t kShardCount = 64;

// A per-thread number, handed out once per thread, so that each thread has a home shard.
uint32_t ThreadOrdinal() {
  static std::atomic<uint32_t> next{0};
  thread_local const uint32_t ordinal = next.fetch_add(1, std::memory_order_relaxed);
  return ordinal;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

uint64_t RandomEpoch() {
  std::random_device device;
  uint64_t epoch = (static_cast<uint64_t>(device()) << 32) ^ device();
  // random_device may be deterministic on odd platforms; the start time keeps restarts apart.
  epoch ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) *
           0x9E3779B97F4A7C15ull;
  epoch ^= static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return epoch == 0 ? 1 : epoch;
}

// Seeds from the OS for the hashes of client-chosen strings (visitor, session, ranked and
// dimension values), so that they land in the open-addressing tables (FlatMap, SessionTable) at
// places no client can predict: with public seeds, values crafted offline to share a home slot
// would turn every probe into a walk along one long chain. Drawn once per process, not per
// aggregator: every aggregator of a process hashes alike (tests compare two; ties between top-k
// counts are ordered by hash). Thread-safe (a function-local static).
struct ProcessSeeds {
  uint64_t visitor;
  uint64_t session;
  uint64_t key;
};

const ProcessSeeds& Seeds() {
  static const ProcessSeeds seeds = [] {
    std::random_device device;
    auto draw = [&device] { return (static_cast<uint64_t>(device()) << 32) ^ device(); };
    return ProcessSeeds{draw(), draw(), draw()};
  }();
  return seeds;
}

// The event-id hasher (dedupe table): one SipHash key per process, for the same reasons.
const IdHasher& ProcessIdHasher() {
  static const IdHasher hasher;
  return hasher;
}

}  // namespace

std::string_view OutcomeName(IngestOutcome outcome) {
  switch (outcome) {
    case IngestOutcome::kAccepted:
      return "accepted";
    case IngestOutcome::kDuplicate:
      return "duplicate";
    case IngestOutcome::kInvalid:
      return "invalid";
    case IngestOutcome::kTooOld:
      return "too_old";
    case IngestOutcome::kInFuture:
      return "in_future";
  }
  return "unknown";
}

// Concurrency design.
//
// Ingest threads never take a mutex and, once their shard's delta has grown to its working
// size, never allocate. Each thread has a home shard (its ordinal modulo kShardCount). A shard
// holds an active delta (plain data) and a sequence number that is odd while a writer holds the
// shard. A writer claims the shard by a CAS from even to odd (seq_cst: the "busy" announcement),
// loads the active delta (seq_cst), updates it with ordinary stores, and releases the shard by
// storing the next even number (release). With one thread per shard the CAS always succeeds
// first time; when more than kShardCount threads ingest, a writer that finds its home shard held
// moves on to the next shard, so shards are shared safely and no writer ever waits for another.
//
// Tick() (one thread) swaps each shard's active delta with its cleared spare (exchange,
// seq_cst), then, if the sequence it reads is odd, waits until it changes: the writer that held
// the shard is done (a few nanoseconds; the writer never waits for the tick). Either the
// writer's claim is ordered before the exchange, and the tick sees it and waits, or the writer's
// load of the active delta is ordered after the exchange and it writes the new delta. After
// that, the old delta belongs to the tick thread alone: it is merged into the windowed state,
// cleared (keeping its capacity) and kept as the next spare.
//
// Snapshots are immutable and published through an atomic shared_ptr.
class Aggregator::Impl {
 public:
  Impl(AggregatorConfig config, const Clock& clock)
      : config_(config),
        clock_(clock),
        limits_{config.max_event_age_seconds * 1000, config.max_event_future_seconds * 1000},
        epoch_(RandomEpoch()),
        seed_visitor_(Seeds().visitor),
        seed_session_(Seeds().session),
        seed_key_(Seeds().key),
        id_hasher_(ProcessIdHasher()),
        dedupe_(config.dedupe_capacity_log2, config.dedupe_horizon_seconds,
                detail::FloorDiv(clock.NowMs(), 1000) - 1),
        state_(config, KeyOf(kOtherValue).hash),
        unknown_(KeyOf(kUnknownValue)) {
    for (Shard& shard : shards_) {
      shard.deltas[0] = std::make_unique<detail::ShardDelta>();
      shard.deltas[1] = std::make_unique<detail::ShardDelta>();
      shard.active.store(shard.deltas[0].get(), std::memory_order_relaxed);
      shard.spare = shard.deltas[1].get();
    }
    auto empty = std::make_shared<Snapshot>();
    empty->epoch = epoch_;
    latest_.Set(std::move(empty));
  }

  IngestResult Ingest(const analytics::EventData& event) {
    IngestResult result;
    if (!ValidateEventId(event, &result)) return result;
    const IdHash id_hash = id_hasher_.Hash(event.event_id());
    // The table is far larger than the caches: start the miss now, validation hides most of it.
    dedupe_.Prefetch(id_hash);
    const int64_t now_ms = clock_.NowMs();
    detail::EventRecord record;
    if (!ValidateEvent(event, now_ms, limits_, &record.event_ms, &record.kind, &result)) {
      return result;
    }
    const int64_t now_second = detail::FloorDiv(now_ms, 1000);
    // Everything up to the dedupe check is independent of the table, so it overlaps the miss
    // started by the prefetch above.
    record.ingest_second = now_second;
    record.value = event.value();
    if (!event.visitor_id().empty()) {
      record.visitor_hash =
          detail::NonZero(detail::HashBytes(event.visitor_id(), seed_visitor_));
    }
    if (!event.session_id().empty()) {
      record.session_hash =
          detail::NonZero(detail::HashBytes(event.session_id(), seed_session_));
    }
    uint64_t truncated = 0;
    if (record.kind == EventKind::kPageView) {
      record.ranked[0] = RankedKeyOf(event.page(), &truncated);
      record.ranked[1] = RankedKeyOf(event.referrer(), &truncated);
      record.ranked[2] = RankedKeyOf(event.utm_campaign(), &truncated);
    }
    record.dimensions[0] = event.country().empty() ? unknown_ : KeyOf(event.country());
    record.dimensions[1] = event.device().empty() ? unknown_ : KeyOf(event.device());
    const detail::TimeKey key = detail::TimeKey::For(record.event_ms, now_ms);
    const uint32_t home = ThreadOrdinal() % kShardCount;

    switch (dedupe_.CheckAndInsert(id_hash, now_second)) {
      case DedupeTable::Outcome::kDuplicate:
        result.outcome = IngestOutcome::kDuplicate;
        return result;
      case DedupeTable::Outcome::kInsertedEvicted:
        shards_[home].dedupe_early_evictions.fetch_add(1, std::memory_order_relaxed);
        break;
      case DedupeTable::Outcome::kInserted:
        break;
    }
    if (truncated != 0) {
      shards_[home].values_truncated.fetch_add(truncated, std::memory_order_relaxed);
    }

    const auto [shard, sequence] = Claim(home);
    shard->active.load(std::memory_order_seq_cst)->Apply(record, key);
    shard->sequence.store(sequence + 2, std::memory_order_release);
    return result;
  }

  void RecordSignal(SessionSignal signal, int64_t event_time_ms) {
    const int64_t now_ms = clock_.NowMs();
    // No time means now; a time beyond the future allowance is counted at the allowance, an
    // old one in whatever windows still cover it (the total at least).
    int64_t when = event_time_ms <= 0 ? now_ms : event_time_ms;
    when = std::min(when, now_ms + limits_.max_event_future_ms);
    const detail::TimeKey key = detail::TimeKey::For(when, now_ms);
    const auto [shard, sequence] = Claim(ThreadOrdinal() % kShardCount);
    shard->active.load(std::memory_order_seq_cst)->AddSignal(static_cast<size_t>(signal), key);
    shard->sequence.store(sequence + 2, std::memory_order_release);
  }

  std::shared_ptr<const Snapshot> Tick() {
    const int64_t now_ms = clock_.NowMs();
    for (Shard& shard : shards_) {
      detail::ShardDelta* old = shard.active.exchange(shard.spare, std::memory_order_seq_cst);
      WaitForWriter(shard);
      if (!old->empty()) {
        state_.Merge(*old, now_ms);
        old->Clear();
      }
      shard.spare = old;
    }
    state_.Maintain(now_ms);
    state_.Compute(now_ms, &metrics_);
    const uint64_t sequence = ++sequence_;
    const std::shared_ptr<const Snapshot> previous = latest_.Get();
    std::shared_ptr<const Snapshot> snapshot =
        detail::BuildSnapshot(metrics_, epoch_, sequence, now_ms, previous.get());
    latest_.Set(snapshot);
    ticks_.store(sequence, std::memory_order_relaxed);
    return snapshot;
  }

  std::shared_ptr<const Snapshot> Latest() const { return latest_.Get(); }

  AggregatorStats stats() const {
    AggregatorStats stats;
    stats.dimension_values_folded = state_.dimension_values_folded();
    for (const Shard& shard : shards_) {
      stats.dedupe_early_evictions += shard.dedupe_early_evictions.load(std::memory_order_relaxed);
      stats.dimension_values_truncated += shard.values_truncated.load(std::memory_order_relaxed);
    }
    stats.dedupe_capacity_ids = dedupe_.capacity_ids();
    stats.ranked_values_folded = state_.ranked_values_folded();
    stats.key_dictionary_bytes = state_.dictionary_bytes();
    stats.sessions_dropped = state_.sessions_dropped();
    stats.ticks = ticks_.load(std::memory_order_relaxed);
    return stats;
  }

  uint64_t epoch() const { return epoch_; }

 private:
  struct alignas(64) Shard {
    std::atomic<uint32_t> sequence{0};  // odd while a writer holds the shard
    std::atomic<detail::ShardDelta*> active{nullptr};
    // Written by the shard's home thread(s) (relaxed; any thread may read them for stats()).
    std::atomic<uint64_t> dedupe_early_evictions{0};
    std::atomic<uint64_t> values_truncated{0};
    detail::ShardDelta* spare = nullptr;  // tick thread only
    std::array<std::unique_ptr<detail::ShardDelta>, 2> deltas;
  };

  detail::KeyRef KeyOf(std::string_view text) const {
    if (text.empty()) return {};
    return {detail::NonZero(detail::HashBytes(text, seed_key_)), text};
  }

  // A page / referrer / campaign value, cut to max_dimension_value_bytes (values sharing the
  // prefix then count as one key, which is also how they would be displayed).
  detail::KeyRef RankedKeyOf(std::string_view text, uint64_t* truncated) const {
    const std::string_view cut = CutAtUtf8Boundary(text, config_.max_dimension_value_bytes);
    if (cut.size() != text.size()) ++*truncated;
    return KeyOf(cut);
  }

  // Claims the first free shard from `home` on. Lock-free: a CAS fails only because another
  // writer holds that shard, and then this writer tries the next one instead of waiting.
  std::pair<Shard*, uint32_t> Claim(uint32_t home) {
    for (uint32_t i = 0;; ++i) {
      Shard& shard = shards_[(home + i) % kShardCount];
      uint32_t sequence = shard.sequence.load(std::memory_order_relaxed);
      if ((sequence & 1) == 0 &&
          shard.sequence.compare_exchange_strong(sequence, sequence + 1, std::memory_order_seq_cst,
                                                 std::memory_order_relaxed)) {
        return {&shard, sequence};
      }
      if (i % kShardCount == kShardCount - 1) CpuRelax();
    }
  }

  static void WaitForWriter(Shard& shard) {
    const uint32_t sequence = shard.sequence.load(std::memory_order_seq_cst);
    if ((sequence & 1) == 0) return;
    // Any change means the writer released the shard; its next event loads the new delta.
    for (int spins = 0; shard.sequence.load(std::memory_order_acquire) == sequence; ++spins) {
      if (spins < 256) {
        CpuRelax();
      } else {
        std::this_thread::yield();  // the writer was preempted mid-event
      }
    }
  }

  const AggregatorConfig config_;
  const Clock& clock_;
  const ValidationLimits limits_;
  const uint64_t epoch_;
  const uint64_t seed_visitor_;
  const uint64_t seed_session_;
  const uint64_t seed_key_;
  const IdHasher& id_hasher_;  // keyed from randombytes_buf
  DedupeTable dedupe_;
  std::array<Shard, kShardCount> shards_;
  detail::WindowedState state_;  // tick thread only
  detail::TickMetrics metrics_;  // tick thread only, reused
  const detail::KeyRef unknown_;
  uint64_t sequence_ = 0;  // tick thread only
  std::atomic<uint64_t> ticks_{0};
  LatestValue<Snapshot> latest_{nullptr};
};

Aggregator::Aggregator(AggregatorConfig config, const Clock& clock)
    : impl_(std::make_unique<Impl>(config, clock)) {}

Aggregator::~Aggregator() = default;

IngestResult Aggregator::Ingest(const analytics::EventData& event) { return impl_->Ingest(event); }

void Aggregator::RecordSignal(SessionSignal signal, int64_t event_time_ms) {
  impl_->RecordSignal(signal, event_time_ms);
}

std::shared_ptr<const Snapshot> Aggregator::Tick() { return impl_->Tick(); }

std::shared_ptr<const Snapshot> Aggregator::Latest() const { return impl_->Latest(); }

AggregatorStats Aggregator::stats() const { return impl_->stats(); }

uint64_t Aggregator::epoch() const { return impl_->epoch(); }

std::span<const std::string_view> Aggregator::MetricNames() { return kMetricNames; }

}  // namespace rta::agg
