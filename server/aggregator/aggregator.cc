#include "server/aggregator/aggregator.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "server/aggregator/dedupe_table.h"
#include "server/aggregator/event_validation.h"
#include "server/aggregator/hash.h"
#include "server/aggregator/latest_value.h"
#include "server/aggregator/live_segment.h"
#include "server/aggregator/metric_catalog.h"
#include "server/aggregator/partial_codec.h"
#include "server/aggregator/shard_delta.h"
#include "server/aggregator/snapshot_builder.h"
#include "server/aggregator/state_codec.h"
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
// would turn every probe into a walk along one long chain. Drawn once per process: every new
// aggregator of a process starts from them and so hashes alike (tests compare two; ties between
// top-k counts are ordered by hash). A restored aggregator hashes with the seeds in its
// checkpoint instead (Aggregator::Impl::Identity), and one of a cluster the cluster's
// (AggregatorConfig::hash_seeds). Thread-safe (a function-local static).
const HashSeeds& Seeds() {
  static const HashSeeds seeds = RandomHashSeeds();
  return seeds;
}

// The event-id hasher (dedupe table): one SipHash key per process, for the same reasons.
const IdHasher& ProcessIdHasher() {
  static const IdHasher hasher;
  return hasher;
}

inline void WaitWhile(const std::atomic<bool>& flag) {
  for (int spins = 0; flag.load(std::memory_order_seq_cst); ++spins) {
    if (spins < 256) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

inline void WaitUntilZero(const std::atomic<uint64_t>& count) {
  for (int spins = 0; count.load(std::memory_order_seq_cst) != 0; ++spins) {
    if (spins < 256) {
      CpuRelax();
    } else {
      std::this_thread::yield();  // a section's holder was preempted, or is appending to the log
    }
  }
}

// Checkpoint format: "RTACKPT\n", the version, three sections (header, de-dup table, windowed
// state; state_codec.h), then a checksum of everything before it. A new version is needed for
// any change to what a section holds.
//
// The de-dup section holds the table's size in words, a bitmap with one bit per 16-word bucket
// (bit b of byte b / 8 set when bucket b has a non-zero word), then the words of those buckets in
// order. Version 1 held all 32 MiB raw: a server that had taken one event wrote, checksummed,
// stored and read back 32 MiB on every checkpoint and start (two seconds of start-up under ASan);
// now an idle table is 32 KiB and a full one costs 1/1024 more than raw.
constexpr char kMagic[8] = {'R', 'T', 'A', 'C', 'K', 'P', 'T', '\n'};
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kTagHeader = 0x44414548;  // "HEAD"
constexpr uint32_t kTagDedupe = 0x55444544;  // "DEDU"
constexpr uint32_t kTagState = 0x54415453;   // "STAT"

// A live segment's members set: 2^17 slots (1 MiB), renewed at a quarter full (32,768
// sessions), so that linear probing stays short even when a tick comes late; with the previous
// set, a segment remembers the last 32,768 to 65,536 sessions its acquisition brought (at 20 new
// sessions a second, 27 to 54 minutes: the length of a visit).
constexpr uint32_t kSegmentMembersLog2 = 17;

// A live segment's windows hold a share of the traffic: smaller budgets for its texts and
// sessions, so that kMaxLiveSegments of them stay within a few times the global windows.
AggregatorConfig SegmentConfig(AggregatorConfig config) {
  config.key_dictionary_max_bytes =
      std::min(config.key_dictionary_max_bytes,
               std::max<uint64_t>(config.key_dictionary_max_bytes / 8, uint64_t{1} << 20));
  config.max_sessions = std::min(config.max_sessions, std::max(config.max_sessions / 8, 1000u));
  return config;
}

// Replayed events were accepted once: no age or future limit applies to them again.
constexpr ValidationLimits kReplayLimits{std::numeric_limits<int64_t>::max(),
                                         std::numeric_limits<int64_t>::max()};

// Which of the three ways in an event takes (Aggregator::Impl::IngestAt).
enum class IngestMode {
  kLive,        // Ingest(): the clock's time, every check
  kLogged,      // ApplyLogged(): the logged time, no time limits, no duplicate refusal
  kReplicated,  // ApplyReplicated(): the logged time, no time limits, duplicates refused
};

}  // namespace

HashSeeds RandomHashSeeds() {
  std::random_device device;
  auto draw = [&device] { return (static_cast<uint64_t>(device()) << 32) ^ device(); };
  HashSeeds seeds;
  seeds.visitor = draw();
  seeds.session = draw();
  seeds.key = draw();
  return seeds;
}

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
// Snapshots are immutable and published through LatestValue (latest_value.h).
//
// Live segments (OpenSegment): up to kMaxLiveSegments extra sets of windows, each fed the events
// that match its conditions. Ingest threads read the open segments' bits (open_segments_, one
// word) and the matchers of the set bits *inside* their shard claim, after loading the active
// delta, and add a matching event to that delta's sub-delta of the segment; Tick() merges the
// sub-deltas into the segment's windows and publishes one snapshot per segment. The tick thread
// opens a segment by writing its matcher and then setting its bit (seq_cst), and closes one by
// clearing the bit; it frees the matcher and windows only after the next merge. That merge is
// the grace period: a writer that saw the bit set made that seq_cst load after its seq_cst claim
// of a shard and before the tick's seq_cst clear, so the merge's read of that shard's sequence
// comes later still, sees the shard held (or already released) and waits; and since its delta
// load came before the clear too, and so before the merge's exchange, what it wrote is in the
// old delta, which the merge clears. The members sets of session-scoped segments are renewed the
// same way (new pointers stored before the merge, the retired set freed after it).
//
// Checkpoints: ingest sections and the cut. Checkpoint() must see a state that corresponds to a
// position of the server's event log: every batch logged before it wholly in, none after it.
// The server holds an IngestSection around "ingest the batch + append it to the log", so the
// cut must fall between sections. Each thread announces an open section by incrementing the
// counter of its slot (its ordinal modulo kShardCount, 64-byte aligned so that threads do not
// share a line; threads beyond 64 share a counter, which is why it counts). The protocol is
// Dekker's, with every access seq_cst:
//   enter:      open[slot] += 1;  if (frozen) { open[slot] -= 1; wait until !frozen; retry }
//   checkpoint: frozen = true;  for every slot: wait until open[slot] == 0;  cut;  frozen = false
// In the single total order of seq_cst operations, either the entering thread's increment
// comes before the checkpoint's store of `frozen`, and then the checkpoint's later load of
// that counter sees it (or a later value) and waits for the section to end; or the store comes
// first, and the thread's load of `frozen` sees true and it backs off without touching
// anything. So once every counter has been read as 0 with `frozen` set, no section is open and
// none can start, and the counter decrement that ended each section (an RMW read by the
// checkpoint's seq_cst load) makes the section's writes (shard deltas, de-dup words, shard
// stats) visible to the checkpoint. The cut then merges the shard deltas (with the same
// exchange protocol as Tick(), which still covers plain Ingest() calls outside sections),
// starts the de-dup table's copy-on-write copy (DedupeTable::BeginCopy: copying 32 MiB inside
// the freeze took 10-40 ms on the dev box; now the freeze only resets a byte per bucket, and
// inserts after the cut copy a bucket before they change it), reads the shard stats, runs the
// caller's at_cut and lowers the flag. The lowering is a seq_cst store after BeginCopy's, and a
// section that starts later has read it, so its inserts see the copy in progress. Everything
// else the checkpoint saves (windows, sessions, dimension tables, dictionary) belongs to the
// tick thread alone and only changes in Merge(), so it is serialized after the sections resume
// and still corresponds to the cut.
class Aggregator::Impl {
 public:
  // What makes hashes and snapshots of one aggregator comparable across a restart: the epoch,
  // the hash seeds, the event-id hasher's key and the de-dup table's time origin. A new
  // aggregator takes the process's; a restored one the checkpoint's.
  struct Identity {
    uint64_t epoch = 0;
    uint64_t seed_visitor = 0;
    uint64_t seed_session = 0;
    uint64_t seed_key = 0;
    IdHasher id_hasher;
    int64_t dedupe_start_second = 0;
  };

  static Identity FreshIdentity(const AggregatorConfig& config, const Clock& clock) {
    const HashSeeds& seeds = config.hash_seeds ? *config.hash_seeds : Seeds();
    return Identity{RandomEpoch(), seeds.visitor,     seeds.session,
                    seeds.key,     ProcessIdHasher(), detail::FloorDiv(clock.NowMs(), 1000) - 1};
  }

  Impl(AggregatorConfig config, const Clock& clock)
      : Impl(config, clock, FreshIdentity(config, clock)) {}

  Impl(AggregatorConfig config, const Clock& clock, const Identity& identity)
      : config_(config),
        clock_(clock),
        limits_{config.max_event_age_seconds * 1000, config.max_event_future_seconds * 1000,
                config.backfill_max_age_seconds * 1000},
        epoch_(identity.epoch),
        seed_visitor_(identity.seed_visitor),
        seed_session_(identity.seed_session),
        seed_key_(identity.seed_key),
        seeds_fingerprint_(detail::SeedsFingerprint(seed_visitor_, seed_session_, seed_key_)),
        id_hasher_(identity.id_hasher),
        dedupe_(config.dedupe_capacity_log2, config.dedupe_horizon_seconds,
                identity.dedupe_start_second),
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
    return IngestAt<IngestMode::kLive>(event, 0, true);
  }

  IngestResult ApplyLogged(const analytics::EventData& event, int64_t ingest_ms) {
    return IngestAt<IngestMode::kLogged>(event, ingest_ms, true);
  }

  IngestResult ApplyReplicated(const analytics::EventData& event, int64_t ingest_ms, bool count) {
    return IngestAt<IngestMode::kReplicated>(event, ingest_ms, count);
  }

  // Ingest(), ApplyLogged() and ApplyReplicated() (IngestMode) in one body, so that a replayed
  // or replicated event does exactly what the original did; the template keeps Ingest()'s code
  // as it was. `count` false: de-duplicate and remember only.
  template <IngestMode kMode>
  __attribute__((always_inline)) IngestResult IngestAt(const analytics::EventData& event,
                                                       int64_t replay_ms, bool count) {
    constexpr bool kReplay = kMode != IngestMode::kLive;
    IngestResult result;
    if (!ValidateEventId(event, &result)) return result;
    const IdHash id_hash = id_hasher_.Hash(event.event_id());
    // The table is far larger than the caches: start the miss now, validation hides most of it.
    dedupe_.Prefetch(id_hash);
    const int64_t now_ms = kReplay ? replay_ms : clock_.NowMs();
    detail::EventRecord record;
    if (!ValidateEvent(event, now_ms, kReplay ? kReplayLimits : limits_, &record.event_ms,
                       &record.kind, &result)) {
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
        // Logged, so it counts (and its id is already remembered).
        if (kMode == IngestMode::kLogged) break;
        result.outcome = IngestOutcome::kDuplicate;
        return result;
      case DedupeTable::Outcome::kInsertedEvicted:
        shards_[home].dedupe_early_evictions.fetch_add(1, std::memory_order_relaxed);
        break;
      case DedupeTable::Outcome::kInserted:
        break;
    }
    if (kMode == IngestMode::kReplicated && !count) return result;
    if (truncated != 0) {
      shards_[home].values_truncated.fetch_add(truncated, std::memory_order_relaxed);
    }
    // Decided from the (logged) ingest time, so a replay decides as the original did.
    if (now_ms - record.event_ms > limits_.max_event_age_ms) {
      result.backfill = true;  // the rollups count it, from the log; the live windows never do
      return result;
    }

    const auto [shard, sequence] = Claim(home);
    detail::ShardDelta* delta = shard->active.load(std::memory_order_seq_cst);
    delta->Apply(record, key);
    // Inside the claim, after the delta's load: see "Live segments" above.
    if (const uint64_t open = open_segments_.load(std::memory_order_seq_cst); open != 0) {
      ApplyToSegments(open, event, record, key, delta);
    }
    shard->sequence.store(sequence + 2, std::memory_order_release);
    return result;
  }

  // The event in every open segment it matches.
  __attribute__((noinline)) void ApplyToSegments(uint64_t open, const analytics::EventData& event,
                                                 const detail::EventRecord& record,
                                                 detail::TimeKey key, detail::ShardDelta* delta) {
    const SegmentFields fields = SegmentFieldsOf(event);
    for (uint64_t bits = open; bits != 0; bits &= bits - 1) {
      const size_t id = static_cast<size_t>(std::countr_zero(bits));
      if (segments_[id].matcher.Matches(fields, record.session_hash)) {
        delta->Segment(id).Apply(record, key);
      }
    }
  }

  int OpenSegment(std::vector<SegmentCondition> conditions) {
    const uint64_t busy = open_segments_.load(std::memory_order_relaxed) | closing_segments_;
    if (busy == ~uint64_t{0}) return -1;
    const size_t id = static_cast<size_t>(std::countr_zero(~busy));
    LiveSegment& segment = segments_[id];
    segment.matcher.session_scoped =
        std::any_of(conditions.begin(), conditions.end(), [](const SegmentCondition& c) {
          return c.dimension < kSegmentDimensionCount && kSegmentSessionScoped[c.dimension];
        });
    segment.matcher.conditions = std::move(conditions);
    segment.state =
        std::make_unique<detail::WindowedState>(SegmentConfig(config_), KeyOf(kOtherValue).hash);
    if (segment.matcher.session_scoped) {
      segment.members = std::make_unique<detail::SessionMembers>(kSegmentMembersLog2);
      segment.matcher.members.store(segment.members.get(), std::memory_order_relaxed);
    }
    segment.epoch = RandomEpoch();
    segment.sequence = 0;
    auto empty = std::make_shared<Snapshot>();
    empty->epoch = segment.epoch;
    empty->time_ms = clock_.NowMs();
    segment.latest = std::move(empty);
    // Publishes the matcher: an ingest thread that sees the bit (seq_cst load) sees it whole.
    open_segments_.fetch_or(uint64_t{1} << id, std::memory_order_seq_cst);
    return static_cast<int>(id);
  }

  void CloseSegment(int id) {
    const uint64_t bit = uint64_t{1} << id;
    if ((open_segments_.load(std::memory_order_relaxed) & bit) == 0) return;
    open_segments_.fetch_and(~bit, std::memory_order_seq_cst);
    closing_segments_ |= bit;  // freed once the next merge has waited out every writer
  }

  std::shared_ptr<const Snapshot> SegmentLatest(int id) const {
    if (id < 0 || id >= static_cast<int>(kMaxLiveSegments) ||
        (open_segments_.load(std::memory_order_relaxed) & (uint64_t{1} << id)) == 0) {
      return nullptr;
    }
    return segments_[static_cast<size_t>(id)].latest;
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
    if (!config_.export_partials) MergeShards(now_ms);
    return Publish(now_ms);
  }

  // Holds back new ingest sections and waits until none is open (the cut, see "Checkpoints"
  // above); sections resume when it ends, also when the work inside throws.
  class Freeze {
   public:
    explicit Freeze(Impl& impl) : frozen_(impl.frozen_) {
      frozen_.store(true, std::memory_order_seq_cst);
      for (SectionCount& section : impl.sections_) WaitUntilZero(section.open);
    }
    ~Freeze() { frozen_.store(false, std::memory_order_seq_cst); }
    Freeze(const Freeze&) = delete;
    Freeze& operator=(const Freeze&) = delete;

   private:
    std::atomic<bool>& frozen_;
  };

  std::string TakePartial(const std::function<void()>& at_cut,
                          std::vector<Aggregator::SegmentPartial>* segments) {
    if (!config_.export_partials) return "";  // the tick merges the shards: nothing to export
    taken_.clear();
    // The segments open before the drain; one closed since has its sub-deltas dropped by it.
    const uint64_t open = segments != nullptr ? open_segments_.load(std::memory_order_relaxed) : 0;
    {
      const Freeze freeze(*this);
      DrainShards([this, open](detail::ShardDelta& old) {
        if (open == 0) old.ClearSegments();
        // An event of a segment is in the delta's own counts too: an empty delta has none.
        if (!old.empty()) taken_.push_back(&old);
      });
      if (at_cut) at_cut();
    }
    // The taken deltas are their shards' spares now: only this thread touches them until the
    // next drain, so they are encoded after the sections resume.
    std::string partial;
    if (!taken_.empty()) detail::EncodePartial(taken_, seeds_fingerprint_, &partial);
    for (uint64_t bits = open; bits != 0; bits &= bits - 1) {
      const size_t id = static_cast<size_t>(std::countr_zero(bits));
      segment_taken_.clear();
      for (const detail::ShardDelta* delta : taken_) {
        if ((delta->touched_segments() >> id) & 1u) segment_taken_.push_back(&delta->segment(id));
      }
      if (segment_taken_.empty()) continue;
      Aggregator::SegmentPartial& out = segments->emplace_back();
      out.id = static_cast<int>(id);
      detail::EncodePartial(segment_taken_, seeds_fingerprint_, &out.partial);
    }
    for (detail::ShardDelta* delta : taken_) delta->Clear();
    taken_.clear();
    return partial;
  }

  bool MergeSegmentPartial(int id, std::string_view partial, std::string* error) {
    if (id < 0 || id >= static_cast<int>(kMaxLiveSegments) ||
        (open_segments_.load(std::memory_order_relaxed) & (uint64_t{1} << id)) == 0) {
      *error = "live segment " + std::to_string(id) + " is not open";
      return false;
    }
    const int64_t now_ms = clock_.NowMs();
    if (!detail::DecodePartial(
            partial, seeds_fingerprint_, &partial_scratch_, [](const detail::ShardDelta&) {},
            error)) {
      return false;
    }
    detail::WindowedState& state = *segments_[static_cast<size_t>(id)].state;
    return detail::DecodePartial(
        partial, seeds_fingerprint_, &partial_scratch_,
        [&state, now_ms](const detail::ShardDelta& delta) { state.Merge(delta, now_ms); }, error);
  }

  bool MergePartial(std::string_view partial, std::string* error) {
    const int64_t now_ms = clock_.NowMs();
    // All or nothing: a first pass only validates, the second (same bytes, same path) merges.
    if (!detail::DecodePartial(
            partial, seeds_fingerprint_, &partial_scratch_, [](const detail::ShardDelta&) {},
            error)) {
      return false;
    }
    return detail::DecodePartial(
        partial, seeds_fingerprint_, &partial_scratch_,
        [this, now_ms](const detail::ShardDelta& delta) { state_.Merge(delta, now_ms); }, error);
  }

  std::atomic<uint64_t>* EnterIngest() {
    std::atomic<uint64_t>& open = sections_[ThreadOrdinal() % kShardCount].open;
    for (;;) {
      open.fetch_add(1, std::memory_order_seq_cst);
      if (!frozen_.load(std::memory_order_seq_cst)) return &open;
      open.fetch_sub(1, std::memory_order_seq_cst);
      WaitWhile(frozen_);
    }
  }

  CheckpointResult Checkpoint(const std::function<void()>& at_cut, bool defer_completion) {
    // Allocated and touched before the freeze: page faults inside it would add milliseconds.
    if (dedupe_copy_.size() != dedupe_.words()) dedupe_copy_.assign(dedupe_.words(), 0);
    // Most of the merge happens before the freeze (as a tick would do it), so that the freeze
    // only merges what arrives meanwhile. (With export_partials the shards are TakePartial's.)
    if (!config_.export_partials) MergeShards(clock_.NowMs());
    CheckpointResult result;
    uint64_t evictions = 0;
    uint64_t truncated = 0;
    const auto frozen_at = std::chrono::steady_clock::now();
    {
      const Freeze freeze(*this);
      result.time_ms = clock_.NowMs();
      if (!config_.export_partials) MergeShards(result.time_ms);
      dedupe_.BeginCopy(dedupe_copy_.data());  // the copy itself runs after the freeze
      for (const Shard& shard : shards_) {
        evictions += shard.dedupe_early_evictions.load(std::memory_order_relaxed);
        truncated += shard.values_truncated.load(std::memory_order_relaxed);
      }
      if (at_cut) {
        try {
          at_cut();
        } catch (...) {
          frozen_.store(false, std::memory_order_seq_cst);
          dedupe_.FinishCopy();  // inserts must stop copying before the buffer can go
          throw;
        }
      }
    }
    result.stall_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - frozen_at)
                          .count();
    result.sequence = Publish(result.time_ms)->sequence;
    result.blob = SerializeHeader(evictions, truncated, result.time_ms);
    result.state_section = SerializeState();
    if (!defer_completion) Complete(&result);
    return result;
  }

  // Finishes the de-dup copy and assembles header | de-dup | state | checksum.
  void Complete(CheckpointResult* result) {
    dedupe_.FinishCopy();
    std::string& blob = result->blob;
    blob.reserve(blob.size() + dedupe_copy_.size() * sizeof(uint64_t) +
                 result->state_section.size() + 64);
    detail::StateWriter out(&blob);
    const size_t dedupe = out.BeginSection(kTagDedupe);
    const size_t bucket_words = DedupeTable::kBucketSize;
    const size_t buckets = dedupe_copy_.size() / bucket_words;
    std::string bitmap((buckets + 7) / 8, '\0');
    for (size_t bucket = 0; bucket < buckets; ++bucket) {
      const uint64_t* words = dedupe_copy_.data() + bucket * bucket_words;
      if (std::any_of(words, words + bucket_words, [](uint64_t word) { return word != 0; })) {
        bitmap[bucket / 8] = static_cast<char>(bitmap[bucket / 8] | (1u << (bucket % 8)));
      }
    }
    out.U64(dedupe_copy_.size());
    out.Raw(bitmap.data(), bitmap.size());
    for (size_t bucket = 0; bucket < buckets; ++bucket) {
      if ((static_cast<uint8_t>(bitmap[bucket / 8]) >> (bucket % 8)) & 1u) {
        out.Raw(dedupe_copy_.data() + bucket * bucket_words, bucket_words * sizeof(uint64_t));
      }
    }
    out.EndSection(dedupe);
    blob.append(result->state_section);
    result->state_section.clear();
    result->state_section.shrink_to_fit();
    out.U64(detail::StateChecksum(blob));
  }

  static std::unique_ptr<Impl> Restore(AggregatorConfig config, const Clock& clock,
                                       std::string_view blob, uint64_t sequence_gap,
                                       std::string* error);

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

  struct alignas(64) SectionCount {
    std::atomic<uint64_t> open{0};  // sections open on the threads of this slot
  };

  void MergeShards(int64_t now_ms) {
    const uint64_t open = open_segments_.load(std::memory_order_relaxed);
    DrainShards([this, open, now_ms](detail::ShardDelta& old) {
      if (old.empty()) return;
      state_.Merge(old, now_ms);
      for (uint64_t bits = old.touched_segments() & open; bits != 0; bits &= bits - 1) {
        const size_t id = static_cast<size_t>(std::countr_zero(bits));
        segments_[id].state->Merge(old.segment(id), now_ms);
      }
      old.Clear();  // drops what a closing segment's last writers added
    });
  }

  // Swaps every shard's active delta for its spare, waits for a writer that may still hold the
  // shard, and hands the old delta to use(old), which must leave no segment sub-delta in it
  // (Clear or ClearSegments); the old delta is the shard's spare from then on. Then the live
  // segments' bookkeeping, for which this pass is the grace period ("Live segments" above).
  template <typename Use>
  void DrainShards(Use use) {
    RotateSegmentMembers();
    const uint64_t dropping = dropping_segments_[0] | dropping_segments_[1];
    for (Shard& shard : shards_) {
      detail::ShardDelta* old = shard.active.exchange(shard.spare, std::memory_order_seq_cst);
      WaitForWriter(shard);
      use(*old);
      for (uint64_t bits = dropping; bits != 0; bits &= bits - 1) {
        old->DropSegment(static_cast<size_t>(std::countr_zero(bits)));
      }
      shard.spare = old;
    }
    // Every writer that could have seen a closing segment open, or a retired members set, has
    // released its shard by now. Each shard's two deltas are spares in turn, one merge apart:
    // a closed segment's deltas are freed over the next two merges.
    dropping_segments_[0] = dropping_segments_[1];
    dropping_segments_[1] = closing_segments_;
    for (uint64_t bits = closing_segments_; bits != 0; bits &= bits - 1) {
      FreeSegment(static_cast<size_t>(std::countr_zero(bits)));
    }
    closing_segments_ = 0;
    retired_members_.clear();
  }

  // Starts a new members set for each open segment whose set is a quarter full; the one before it
  // stays for lookups, the one before that is retired (freed after this merge).
  void RotateSegmentMembers() {
    for (uint64_t bits = open_segments_.load(std::memory_order_relaxed); bits != 0;
         bits &= bits - 1) {
      LiveSegment& segment = segments_[static_cast<size_t>(std::countr_zero(bits))];
      if (segment.members == nullptr || segment.members->size() * 4 < segment.members->capacity()) {
        continue;
      }
      if (segment.previous_members != nullptr) {
        retired_members_.push_back(std::move(segment.previous_members));
      }
      segment.previous_members = std::move(segment.members);
      segment.members = std::make_unique<detail::SessionMembers>(kSegmentMembersLog2);
      segment.matcher.previous_members.store(segment.previous_members.get(),
                                             std::memory_order_seq_cst);
      segment.matcher.members.store(segment.members.get(), std::memory_order_seq_cst);
    }
  }

  void FreeSegment(size_t id) {
    LiveSegment& segment = segments_[id];
    segment.matcher.members.store(nullptr, std::memory_order_relaxed);
    segment.matcher.previous_members.store(nullptr, std::memory_order_relaxed);
    segment.matcher.conditions.clear();
    segment.matcher.session_scoped = false;
    segment.members.reset();
    segment.previous_members.reset();
    segment.state.reset();
    segment.metrics = detail::TickMetrics();
    segment.latest.reset();
  }

  void PublishSegments(int64_t now_ms) {
    for (uint64_t bits = open_segments_.load(std::memory_order_relaxed); bits != 0;
         bits &= bits - 1) {
      LiveSegment& segment = segments_[static_cast<size_t>(std::countr_zero(bits))];
      segment.state->Maintain(now_ms);
      segment.state->Compute(now_ms, &segment.metrics);
      segment.latest = detail::BuildSnapshot(segment.metrics, segment.epoch, ++segment.sequence,
                                             now_ms, segment.latest.get());
    }
  }

  std::shared_ptr<const Snapshot> Publish(int64_t now_ms) {
    state_.Maintain(now_ms);
    state_.Compute(now_ms, &metrics_);
    const uint64_t sequence = ++sequence_;
    const std::shared_ptr<const Snapshot> previous = latest_.Get();
    std::shared_ptr<const Snapshot> snapshot =
        detail::BuildSnapshot(metrics_, epoch_, sequence, now_ms, previous.get());
    latest_.Set(snapshot);
    PublishSegments(now_ms);
    ticks_.store(ticks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return snapshot;
  }

  std::string SerializeHeader(uint64_t evictions, uint64_t truncated, int64_t time_ms) const;
  std::string SerializeState() const;

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
  const uint64_t seeds_fingerprint_;  // carried by partials (partial_codec.h)
  const IdHasher id_hasher_;  // keyed from randombytes_buf, or from a checkpoint
  DedupeTable dedupe_;
  std::array<Shard, kShardCount> shards_;
  std::array<SectionCount, kShardCount> sections_;
  alignas(64) std::atomic<bool> frozen_{false};  // a checkpoint is cutting
  std::vector<uint64_t> dedupe_copy_;             // tick thread only: the table at the cut
  detail::WindowedState state_;  // tick thread only
  detail::TickMetrics metrics_;  // tick thread only, reused
  std::vector<detail::ShardDelta*> taken_;  // tick thread only: TakePartial's deltas
  std::vector<const detail::ShardDelta*> segment_taken_;  // tick thread only: one segment's
  detail::ShardDelta partial_scratch_;      // tick thread only: MergePartial's decoded delta
  const detail::KeyRef unknown_;
  uint64_t sequence_ = 0;  // tick thread only
  std::atomic<uint64_t> ticks_{0};  // written by the tick thread only
  LatestValue<Snapshot> latest_{nullptr};

  // Live segments (see "Live segments" above). The matcher is what ingest threads read; the
  // rest belongs to the tick thread.
  struct LiveSegment {
    detail::SegmentMatcher matcher;
    std::unique_ptr<detail::WindowedState> state;
    std::unique_ptr<detail::SessionMembers> members;
    std::unique_ptr<detail::SessionMembers> previous_members;
    detail::TickMetrics metrics;
    uint64_t epoch = 0;
    uint64_t sequence = 0;
    std::shared_ptr<const Snapshot> latest;
  };
  std::array<LiveSegment, kMaxLiveSegments> segments_;
  alignas(64) std::atomic<uint64_t> open_segments_{0};  // bit i: segments_[i] is open
  uint64_t closing_segments_ = 0;                       // tick thread only
  std::array<uint64_t, 2> dropping_segments_{};         // tick thread only
  std::vector<std::unique_ptr<detail::SessionMembers>> retired_members_;  // tick thread only
};

namespace {

// The config fields that shape the saved structures: a checkpoint loads only into an aggregator
// that agrees on them. (The others, such as limits, top_k or the dedupe horizon, may change
// across a restart.)
struct LayoutField {
  std::string_view name;
  int64_t value;
};
std::array<LayoutField, 4> LayoutOf(const AggregatorConfig& config) {
  return {{{"dedupe_capacity_log2", config.dedupe_capacity_log2},
           {"max_event_future_seconds", config.max_event_future_seconds},
           {"top_k_capacity", config.top_k_capacity},
           {"dimension_cardinality_cap", config.dimension_cardinality_cap}}};
}

}  // namespace

std::string Aggregator::Impl::SerializeHeader(uint64_t evictions, uint64_t truncated,
                                              int64_t time_ms) const {
  std::string blob;
  detail::StateWriter out(&blob);
  out.Raw(kMagic, sizeof kMagic);
  out.U32(kFormatVersion);

  const size_t header = out.BeginSection(kTagHeader);
  for (const LayoutField& field : LayoutOf(config_)) out.I64(field.value);
  out.U64(epoch_);
  out.U64(sequence_);
  out.U64(ticks_.load(std::memory_order_relaxed));
  out.I64(time_ms);
  out.U64(seed_visitor_);
  out.U64(seed_session_);
  out.U64(seed_key_);
  unsigned char key[16];
  id_hasher_.CopyKey(key);
  out.Raw(key, sizeof key);
  out.I64(dedupe_.start_second());
  out.U64(evictions);
  out.U64(truncated);
  out.EndSection(header);
  return blob;
}

std::string Aggregator::Impl::SerializeState() const {
  std::string section;
  detail::StateWriter out(&section);
  const size_t state = out.BeginSection(kTagState);
  state_.Save(out);
  out.EndSection(state);
  return section;
}

std::unique_ptr<Aggregator::Impl> Aggregator::Impl::Restore(AggregatorConfig config,
                                                            const Clock& clock,
                                                            std::string_view blob,
                                                            uint64_t sequence_gap,
                                                            std::string* error) {
  auto fail = [error](std::string message) -> std::unique_ptr<Impl> {
    if (error != nullptr) *error = std::move(message);
    return nullptr;
  };
  constexpr size_t kFixed = sizeof kMagic + sizeof(uint32_t) + sizeof(uint64_t);
  if (blob.size() < kFixed || std::memcmp(blob.data(), kMagic, sizeof kMagic) != 0) {
    return fail("not an aggregator checkpoint (no RTACKPT header)");
  }
  uint32_t version = 0;
  std::memcpy(&version, blob.data() + sizeof kMagic, sizeof version);
  if (version != kFormatVersion) {
    return fail("unsupported checkpoint format version " + std::to_string(version) +
                " (this build reads version " + std::to_string(kFormatVersion) + ")");
  }
  uint64_t checksum = 0;
  std::memcpy(&checksum, blob.data() + blob.size() - sizeof checksum, sizeof checksum);
  if (checksum != detail::StateChecksum(blob.substr(0, blob.size() - sizeof checksum))) {
    return fail("corrupt checkpoint: checksum mismatch (truncated or damaged)");
  }
  detail::StateReader in(blob.substr(sizeof kMagic + sizeof version,
                                     blob.size() - kFixed));

  detail::StateReader header = in.Section(kTagHeader, "header");
  for (const LayoutField& field : LayoutOf(config)) {
    const int64_t saved = header.I64();
    if (header.ok() && saved != field.value) {
      return fail("checkpoint incompatible with the config: " + std::string(field.name) +
                  " is " + std::to_string(saved) + " in the checkpoint, " +
                  std::to_string(field.value) + " in the config");
    }
  }
  Identity identity;
  identity.epoch = header.U64();
  const uint64_t sequence = header.U64();
  const uint64_t ticks = header.U64();
  header.I64();  // the clock at the cut (for the reader's information)
  identity.seed_visitor = header.U64();
  identity.seed_session = header.U64();
  identity.seed_key = header.U64();
  unsigned char key[16] = {};  // read below; zeros if the header is short
  header.Raw(key, sizeof key);
  identity.id_hasher = IdHasher::WithKey(key);
  identity.dedupe_start_second = header.I64();
  const uint64_t evictions = header.U64();
  const uint64_t truncated = header.U64();
  if (!in.ok()) return fail(in.error());
  if (!header.ok() || !header.AtEnd() || identity.epoch == 0) {
    return fail(header.ok() ? "corrupt checkpoint: header" : header.error());
  }
  if (config.hash_seeds &&
      *config.hash_seeds !=
          HashSeeds{identity.seed_visitor, identity.seed_session, identity.seed_key}) {
    return fail("checkpoint incompatible with the config: hash_seeds differ from its seeds");
  }

  auto impl = std::make_unique<Impl>(config, clock, identity);
  detail::StateReader dedupe = in.Section(kTagDedupe, "dedupe");
  const uint64_t words = dedupe.U64();
  if (dedupe.ok() && words != impl->dedupe_.words()) {
    return fail("corrupt checkpoint: the de-dup table has another size");
  }
  const size_t buckets = impl->dedupe_.words() / DedupeTable::kBucketSize;
  const std::string_view bitmap = dedupe.Bytes((buckets + 7) / 8);
  size_t present = 0;
  for (const char byte : bitmap) present += std::popcount(static_cast<uint8_t>(byte));
  const std::string_view bytes =
      dedupe.Bytes(present * DedupeTable::kBucketSize * sizeof(uint64_t));
  if (!in.ok()) return fail(in.error());
  if (!dedupe.ok() || !dedupe.AtEnd() || !impl->dedupe_.LoadBuckets(bitmap, bytes)) {
    return fail(dedupe.ok() ? "corrupt checkpoint: de-dup section" : dedupe.error());
  }

  detail::StateReader state = in.Section(kTagState, "state");
  const bool loaded = impl->state_.Load(state);
  if (!in.ok()) return fail(in.error());
  if (!loaded || !state.AtEnd()) {
    return fail(state.ok() ? "corrupt checkpoint: state section" : state.error());
  }
  if (!in.AtEnd()) return fail("corrupt checkpoint: trailing bytes");

  impl->sequence_ = sequence + sequence_gap;
  impl->ticks_.store(ticks, std::memory_order_relaxed);
  impl->shards_[0].dedupe_early_evictions.store(evictions, std::memory_order_relaxed);
  impl->shards_[0].values_truncated.store(truncated, std::memory_order_relaxed);
  return impl;
}

Aggregator::Aggregator(AggregatorConfig config, const Clock& clock)
    : impl_(std::make_unique<Impl>(config, clock)) {}

Aggregator::Aggregator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::unique_ptr<Aggregator> Aggregator::Restore(AggregatorConfig config, const Clock& clock,
                                                std::string_view blob, uint64_t sequence_gap,
                                                std::string* error) {
  std::unique_ptr<Impl> impl = Impl::Restore(config, clock, blob, sequence_gap, error);
  if (!impl) return nullptr;
  return std::unique_ptr<Aggregator>(new Aggregator(std::move(impl)));
}

Aggregator::IngestSection Aggregator::EnterIngest() {
  return IngestSection(impl_->EnterIngest());
}

CheckpointResult Aggregator::Checkpoint(const std::function<void()>& at_cut,
                                        bool defer_completion) {
  return impl_->Checkpoint(at_cut, defer_completion);
}

void Aggregator::CompleteCheckpoint(CheckpointResult* result) { impl_->Complete(result); }

IngestResult Aggregator::ApplyLogged(const analytics::EventData& event, int64_t ingest_ms) {
  return impl_->ApplyLogged(event, ingest_ms);
}

IngestResult Aggregator::ApplyReplicated(const analytics::EventData& event, int64_t ingest_ms,
                                         bool count) {
  return impl_->ApplyReplicated(event, ingest_ms, count);
}

std::string Aggregator::TakePartial(const std::function<void()>& at_cut,
                                    std::vector<SegmentPartial>* segments) {
  return impl_->TakePartial(at_cut, segments);
}

bool Aggregator::MergeSegmentPartial(int id, std::string_view partial, std::string* error) {
  return impl_->MergeSegmentPartial(id, partial, error);
}

bool Aggregator::MergePartial(std::string_view partial, std::string* error) {
  return impl_->MergePartial(partial, error);
}

Aggregator::~Aggregator() = default;

IngestResult Aggregator::Ingest(const analytics::EventData& event) { return impl_->Ingest(event); }

void Aggregator::RecordSignal(SessionSignal signal, int64_t event_time_ms) {
  impl_->RecordSignal(signal, event_time_ms);
}

std::shared_ptr<const Snapshot> Aggregator::Tick() { return impl_->Tick(); }

std::shared_ptr<const Snapshot> Aggregator::Latest() const { return impl_->Latest(); }

int Aggregator::OpenSegment(std::vector<SegmentCondition> conditions) {
  return impl_->OpenSegment(std::move(conditions));
}

void Aggregator::CloseSegment(int id) { impl_->CloseSegment(id); }

std::shared_ptr<const Snapshot> Aggregator::SegmentLatest(int id) const {
  return impl_->SegmentLatest(id);
}

AggregatorStats Aggregator::stats() const { return impl_->stats(); }

uint64_t Aggregator::epoch() const { return impl_->epoch(); }

std::span<const std::string_view> Aggregator::MetricNames() { return kMetricNames; }

}  // namespace rta::agg
