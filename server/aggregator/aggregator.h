#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "analytics.pb.h"
#include "server/aggregator/clock.h"
#include "server/aggregator/live_segment.h"
#include "server/aggregator/snapshot.h"

namespace rta::agg {

// The seeds of the hashes of client-chosen strings (aggregator.cc explains why they are
// secret). Every node of a cluster must hash alike, since HyperLogLog registers, session hashes
// and key hashes from different nodes are merged (Aggregator::MergePartial).
struct HashSeeds {
  uint64_t visitor = 0;
  uint64_t session = 0;
  uint64_t key = 0;

  bool operator==(const HashSeeds&) const = default;
};
// Fresh seeds from std::random_device, for a cluster to create once and share. Thread-safe.
HashSeeds RandomHashSeeds();

struct AggregatorConfig {
  int64_t dedupe_horizon_seconds = 600;      // an event_id seen again within this counts once
  // 2^22 slots of 8 bytes (32 MiB); holds DedupeTable::CapacityIdsFor(2^22) = 3,145,728 ids
  // accepted within one horizon without early evictions.
  uint32_t dedupe_capacity_log2 = 22;
  int64_t max_event_age_seconds = 3600;  // older events skip the live windows
  // Backfill: an event older than max_event_age_seconds but at most this old is accepted
  // (de-duplicated as any other) without entering the live windows: it is counted only by the
  // history's rollups, which read it from the event log (server/rollup_writer.h). 0 (memory-only
  // mode, no history): such an event is refused as too old.
  int64_t backfill_max_age_seconds = 0;
  int64_t max_event_future_seconds = 60;     // events further ahead are rejected
  uint32_t dimension_cardinality_cap = 100;  // distinct values per dimension before __other__
  uint32_t top_k = 10;                       // entries reported per top-k list
  uint32_t top_k_capacity = 200;             // Space-Saving counters per bucket summary
  uint32_t max_sessions = 1'000'000;         // sessions tracked at once
  int64_t active_session_seconds = 300;      // active_sessions: an event within this
  // page / referrer / utm_campaign values longer than this are cut (at a UTF-8 boundary) before
  // they are counted: every byte of a ranked value is copied into a shard delta each tick and
  // kept in the key dictionary while a top-k summary monitors it.
  uint32_t max_dimension_value_bytes = 256;
  // Budget for the texts of ranked values (KeyDictionary); a new value that does not fit is
  // counted under "__other__" instead (AggregatorStats::ranked_values_folded).
  uint64_t key_dictionary_max_bytes = 32ull << 20;
  // Set: a fresh aggregator hashes visitor, session, ranked and dimension values with these
  // instead of the process's random seeds, so that every node of a cluster hashes alike. The
  // event-id hasher (de-dup) stays per process: de-duplication is the partition owner's alone.
  // A restored aggregator keeps its checkpoint's seeds (Restore refuses a checkpoint whose
  // seeds differ from these).
  std::optional<HashSeeds> hash_seeds;
  // Cluster mode (issue 16): Tick() and Checkpoint() do NOT fold the shard deltas into the
  // windows; TakePartial() hands them out instead, and the windows change only by
  // MergePartial(). Open live segments count here as elsewhere, and TakePartial() hands out
  // their sub-deltas too (MergeSegmentPartial() folds them in where the windows live).
  bool export_partials = false;
};

// Why Ingest() refused or skipped an event. Stable names: they are Prometheus label values.
enum class IngestOutcome {
  kAccepted,
  kDuplicate,  // event_id seen within the dedupe horizon
  kInvalid,    // a field is malformed (see IngestResult::field / reason)
  kTooOld,     // event time older than max_event_age_seconds (and backfill_max_age_seconds)
  kInFuture,   // event time more than max_event_future_seconds ahead
};
std::string_view OutcomeName(IngestOutcome outcome);  // "accepted", "duplicate", "invalid", ...

// Signals found by session analysis (AnalyzeSession) that dashboards see as metrics.
enum class SessionSignal {
  kRageClick,        // metric rage_clicks
  kBotSuspected,     // metric suspected_bots
  kCartAbandonment,  // metric cart_abandonments
};

struct IngestResult {
  IngestOutcome outcome = IngestOutcome::kAccepted;
  std::string_view field;  // the offending field for kInvalid/kTooOld/kInFuture, else empty
  std::string reason;      // human reason for refusals, else empty (no allocation on success)
  // kAccepted only: older than max_event_age_seconds, so counted by the history alone.
  bool backfill = false;
};

// Counters of things the aggregator did on its own, for Prometheus. Monotonic.
struct AggregatorStats {
  uint64_t dimension_values_folded = 0;  // events whose country/device went to __other__
  // Ids still inside the horizon dropped from the dedupe table because both of a new id's
  // buckets were full of live ids: a retry of such an id would count twice. Nonzero means more
  // distinct ids arrived within one horizon than dedupe_capacity_ids.
  uint64_t dedupe_early_evictions = 0;
  uint64_t dedupe_capacity_ids = 0;           // constant: ids per horizon the table is built for
  uint64_t dimension_values_truncated = 0;    // ranked values cut to max_dimension_value_bytes
  uint64_t ranked_values_folded = 0;          // ranked values counted as __other__ (budget full)
  uint64_t key_dictionary_bytes = 0;          // gauge: accounted bytes of the key dictionary
  uint64_t sessions_dropped = 0;         // sessions not tracked because max_sessions was reached
  uint64_t ticks = 0;
};

// What Aggregator::Checkpoint() returns.
struct CheckpointResult {
  // The whole state at the cut; Aggregator::Restore() reads it. With a deferred completion,
  // only once CompleteCheckpoint() has run.
  std::string blob;
  std::string state_section;  // deferred completion: the windows' part, until it is assembled
  int64_t stall_us = 0;    // how long new ingest sections were held back (the freeze)
  uint64_t sequence = 0;   // the sequence of the snapshot published with the checkpoint
  int64_t time_ms = 0;     // the clock at the cut
};

// The in-memory heart of the server: takes events from any number of threads and produces
// immutable snapshots of every metric over sliding event-time windows.
//
// Thread-safety: Ingest() and EnterIngest() may be called concurrently from any threads and
// take no mutex. Tick(), Checkpoint(), TakePartial() and MergePartial() must be called from one
// thread at a time (the server's timer thread). Latest() and stats() may be called from any thread.
// ApplyLogged() is for the replay at start-up, before anything else runs (see there). Destruction
// requires that no call is in progress and no IngestSection is open.
//
// Durability (the server's side: the event log and the checkpoint store): every batch is
// ingested inside an IngestSection that also covers its append to the log; Checkpoint() cuts
// between sections, so its blob holds exactly the batches logged before the Lsn the server reads
// in at_cut. At start: Restore() the latest blob, ApplyLogged() every logged event after its
// Lsn (with a Tick() every few thousand), then serve.
class Aggregator {
 public:
  Aggregator(AggregatorConfig config, const Clock& clock);
  ~Aggregator();
  Aggregator(const Aggregator&) = delete;
  Aggregator& operator=(const Aggregator&) = delete;

  // An open ingest section (RAII): while any is open, Checkpoint() waits before it cuts, and
  // while a checkpoint is cutting, EnterIngest() waits (spinning briefly, then yielding) until
  // the cut is done. Hold one around "ingest a batch's events + append the batch to the log +
  // update the producer table", so that a batch is either wholly before a cut or wholly after.
  // Keep it short (no waiting on the network inside): the checkpoint's stall includes the
  // longest section open when it starts. Not reentrant: a thread must not enter a second section
  // while it holds one (it could wait for a checkpoint that waits for it). Move-only; ends when
  // destroyed or on End().
  class IngestSection {
   public:
    IngestSection() = default;
    IngestSection(IngestSection&& other) noexcept : open_(std::exchange(other.open_, nullptr)) {}
    IngestSection& operator=(IngestSection&& other) noexcept {
      if (this != &other) {
        End();
        open_ = std::exchange(other.open_, nullptr);
      }
      return *this;
    }
    ~IngestSection() { End(); }
    void End() {
      if (open_ != nullptr) std::exchange(open_, nullptr)->fetch_sub(1, std::memory_order_seq_cst);
    }

   private:
    friend class Aggregator;
    explicit IngestSection(std::atomic<uint64_t>* open) : open_(open) {}
    std::atomic<uint64_t>* open_ = nullptr;
  };
  IngestSection EnterIngest();

  // Tick() plus a consistent cut, on the tick thread, in place of a Tick(): holds back new
  // ingest sections, waits for the open ones to end, folds every shard delta in, starts a
  // copy-on-write copy of the de-dup table, calls at_cut() (the server reads its log's last Lsn
  // and copies its producer table there: nothing is being ingested or logged meanwhile), lets
  // sections start again, and only then finishes the copy, publishes the snapshot and
  // serializes the state (see README.md for the stall and cost). Events ingested outside
  // sections (plain Ingest() on another thread, RecordSignal()) fall on either side of the cut,
  // and a plain Ingest() must not run concurrently with a Checkpoint() at all (its de-dup
  // insert could race with the copy).
  //
  // defer_completion: the tick thread only serializes what belongs to it (the windows); the
  // de-dup table's copy (32 MiB by default: most of the blob, and of the time) is finished and
  // the blob assembled by CompleteCheckpoint(), which the server runs on its store thread, so a
  // checkpoint costs the tick a few ms instead of tens.
  CheckpointResult Checkpoint(const std::function<void()>& at_cut, bool defer_completion = false);
  // Any thread, once per deferred Checkpoint(), before the next Checkpoint() starts (ingest in
  // sections may go on meanwhile: each insert copies the buckets it touches first).
  void CompleteCheckpoint(CheckpointResult* result);

  // An aggregator with the state of a Checkpoint() blob, or nullptr with *error set (a damaged
  // or truncated blob, another format version, or a config that changes the layout: the error
  // names the field). It keeps the checkpoint's epoch and hash seeds. Its next snapshot's
  // sequence is the checkpoint's + sequence_gap + 1: the old process may have published up to
  // (time since the checkpoint / tick interval) more snapshots after the checkpoint, and a
  // dashboard resuming with one of those must see a higher sequence, so the caller passes at
  // least that plus a margin (e.g. 2 x elapsed / tick_ms + 1000). Every series of the first
  // snapshot after a restore counts as changed (changed_sequence = its sequence), so resuming
  // dashboards receive everything. Latest() is the empty snapshot until the first Tick().
  static std::unique_ptr<Aggregator> Restore(AggregatorConfig config, const Clock& clock,
                                             std::string_view blob, uint64_t sequence_gap,
                                             std::string* error);

  // Replays one event read back from the event log, accepted at clock time ingest_ms: the same
  // effect as the original Ingest() at that time (its time key and its de-dup entry use
  // ingest_ms), without the age / future refusal (it was accepted) and without the duplicate
  // check, but its id is remembered, so a re-send after the restart is a duplicate. Returns
  // kInvalid only for an event that Ingest() could not have accepted (a damaged log record).
  // Call it on one thread before serving, and Tick() every few thousand events so that shard
  // deltas stay small: buckets that left the rings since are handled by the merge (an event
  // whose second or minute is no longer in its ring counts in the windows that still cover it,
  // at least WINDOW_TOTAL). The log does not record where the original ticks fell, so a replay
  // reproduces counts, HLLs and quantiles exactly, but not necessarily overflowed Space-Saving
  // summaries, the admission order of new dimension values within a tick, the last bits of
  // `revenue`, or the expiry point of sessions idle for about an hour (README.md).
  IngestResult ApplyLogged(const analytics::EventData& event, int64_t ingest_ms);

  // Validates, de-duplicates and counts one event. Lock-free; allocation-free on success.
  IngestResult Ingest(const analytics::EventData& event);

  // Cluster mode: an event of this node's partition read from the cluster's stream, accepted at
  // clock time ingest_ms by the node that took it. Like ApplyLogged() (its time key and de-dup
  // entry use ingest_ms, no age or future refusal) but WITH the duplicate check: an event_id
  // seen within the dedupe horizon returns kDuplicate and is not counted (a producer's re-send
  // lands in the stream twice); otherwise it is counted and remembered. count == false only
  // remembers the id (kDuplicate if it was known): a new partition owner warming its de-dup
  // table from the stream before the part it counts. Same thread-safety as Ingest(); call it
  // inside an IngestSection to be covered by TakePartial()'s cut.
  IngestResult ApplyReplicated(const analytics::EventData& event, int64_t ingest_ms,
                               bool count = true);

  // Cluster mode (export_partials), tick thread (as Tick() and Checkpoint()). With the freeze
  // of Checkpoint() (holds back new IngestSections, waits for the open ones), swaps every
  // shard's delta out and calls at_cut() (the caller reads the stream positions the partial
  // covers: nothing is being ingested meanwhile), lets sections resume, then encodes the
  // swapped deltas into one partial (partial_codec.h) and clears them. Returns "" (at_cut
  // still called) when nothing was ingested since the last call. Each open live segment's
  // sub-deltas go into a partial of their own in *segments (by segment id; the segments with
  // no event since the last call are left out); with `segments` null they are dropped. If
  // at_cut throws, sections resume, the exception propagates and the swapped deltas are kept
  // for the next call (counted once, later). Without export_partials it returns "" at once
  // (at_cut not called): the tick owns the shards.
  struct SegmentPartial {
    int id = -1;
    std::string partial;
  };
  std::string TakePartial(const std::function<void()>& at_cut,
                          std::vector<SegmentPartial>* segments = nullptr);

  // Tick thread. Folds a partial (of any node, this one included) into the windows as seen at
  // the clock's now; the next Tick() publishes it. Everything is validated before anything is
  // applied: a damaged, foreign-format or foreign-seeded partial returns false with *error
  // naming what was wrong, and the windows are untouched. Merging the same partial twice
  // counts it twice: the caller de-duplicates partials by their sequence.
  bool MergePartial(std::string_view partial, std::string* error);
  // The same for live segment `id` (open here): a segment partial of any node's TakePartial,
  // for the segment with the same conditions. False with *error when it does not decode (the
  // segment untouched) or `id` is not open.
  bool MergeSegmentPartial(int id, std::string_view partial, std::string* error);

  // Counts one session-analysis signal at its event time. Same thread-safety as Ingest().
  void RecordSignal(SessionSignal signal, int64_t event_time_ms);

  // Folds everything ingested since the previous tick into the windows, builds a new snapshot
  // at the clock's current time and publishes it. Returns the published snapshot.
  std::shared_ptr<const Snapshot> Tick();

  // The latest published snapshot (an empty one with sequence 0 before the first tick).
  std::shared_ptr<const Snapshot> Latest() const;

  // Live segments (live_segment.h): windows of only the events that match every condition,
  // counted from the moment the segment opens (not restored from checkpoints), beside the
  // global ones; each Tick() publishes one snapshot per open segment, with its own epoch and
  // sequence. An event counts in a segment as it does in the global windows, except signals
  // (RecordSignal), which name no dimension. Costs ingest one word load per event with no
  // segment open, and a match (a few string compares) per open segment otherwise.
  //
  // Tick thread only (as Tick()). Opens a segment; returns its id, or -1 when kMaxLiveSegments
  // are open or closing. Conditions: distinct dimensions, values as SegmentCondition says.
  int OpenSegment(std::vector<SegmentCondition> conditions);
  // Tick thread only. Closes it; its memory is freed over the next two ticks, and its id may be
  // reused after the next one.
  void CloseSegment(int id);
  // Tick thread only. The segment's latest snapshot (empty, sequence 0, until the next tick),
  // or nullptr when `id` is not open.
  std::shared_ptr<const Snapshot> SegmentLatest(int id) const;

  AggregatorStats stats() const;
  uint64_t epoch() const;

  // Every metric name a snapshot can contain, for validating subscription filters.
  static std::span<const std::string_view> MetricNames();

 private:
  class Impl;
  explicit Aggregator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rta::agg
