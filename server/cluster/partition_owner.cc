#include "server/cluster/partition_owner.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <random>

#include "analytics.pb.h"
#include "server/cluster/jetstream_log.h"
#include "server/cluster/partial_record.h"
#include "server/cluster/subject_trim.h"
#include "server/storage/rollup_delta.h"
#include "server/storage/rollup_event.h"

namespace rta::cluster {
namespace {

using Clock = std::chrono::steady_clock;

// How long an owner that has read everything waits before it asks again (and the granularity
// of stopping it).
constexpr int kOwnerPollMs = 100;

// How long a warm-up get may keep failing (a follower behind, a server gone) before the setup
// starts over.
constexpr auto kWarmGetLimit = std::chrono::seconds(10);

// How often an owner trims what its chain has made redundant: every this many exchanges (10 s
// at the default --cluster-exchange-ms; a trim is a few dozen small requests).
constexpr int kTrimEveryExchanges = 10;

// The most rollup bytes one partial record carries: a larger flush goes out as several records
// (partial_record.h), each well under NATS's default max_payload of 1 MiB with the live delta
// beside it. One write is at most a dense sketch cell of ~20 KiB, so a part is never empty.
constexpr size_t kRollupBytesPerRecord = 256 << 10;

// How long a new owner waits for its node's history store to apply the chain's last flush before
// it restores the former owner's sessions from it (normally the store is there already: it
// follows the chain within ~50 ms). Part of the takeover time.
constexpr auto kHistoryRestoreWait = std::chrono::seconds(5);

// The most cluster live segments an owner counts (half the aggregator's ids: a closed
// segment's id is reusable only after two more exchanges).
constexpr size_t kMaxOwnerSegments = agg::kMaxLiveSegments / 2;

uint64_t DrawRunId() {
  std::random_device random;  // the kernel's CSPRNG in libstdc++
  return (uint64_t{random()} << 32) | random();
}

}  // namespace

// One setup of the partition: its partial log and its aggregator. A failure ends it;
// the owner's loop then starts a new one (which reads the chain's end again).
class PartitionOwner::Run {
 public:
  explicit Run(PartitionOwner& owner) : owner_(owner), options_(owner.options_) {}

  // Until the owner stops (true) or something fails (false, *why).
  //
  // The partition's events are read one message at a time with JetStream's direct get ("the
  // next message on rta.ev.<p> from sequence n", answered by any replica). The first version
  // used an ordered push consumer; after a NATS server was killed, owners' consumers sometimes
  // delivered nothing more, without an error, a missed-heartbeat reset or a pending count,
  // while the subject grew (the three-node test saw the counting stop at about 55% of a replay,
  // in 5 runs of 17). A get holds no state on any server and fails loudly, and a message holds
  // a group commit's worth of events of the partition, so one request per message costs about
  // 0.2 ms of loopback round trip against hundreds of events.
  bool Go(std::string* why) {
    if (!Setup(why)) return false;
    owner_.counting_.store(true, std::memory_order_release);
    auto next_exchange = Clock::now() + std::chrono::milliseconds(options_.exchange_ms);
    while (!owner_.stop_.load(std::memory_order_acquire)) {
      NatsMsgPtr msg;
      // The history's pending cells are bounded: while they cannot go out (the partial log is
      // retrying a publish), read nothing more.
      const bool held = HistoryFull();
      const natsStatus status = held ? NATS_NOT_FOUND
                                     : DirectGetNext(owner_.session_->js(), options_.event_stream,
                                                     subject_, applied_ + 1, &msg);
      bool idle = false;
      if (held) {
        idle = true;
      } else if (status == NATS_OK) {
        Apply(msg.get());
      } else if (status == NATS_NOT_FOUND) {
        idle = true;  // nothing after applied_ yet
        owner_.lag_.store(0, std::memory_order_relaxed);
      } else {
        // A NATS server gone, a leader being elected: the same read again shortly.
        owner_.read_errors_.fetch_add(1, std::memory_order_relaxed);
        idle = true;
      }
      if (Clock::now() >= next_exchange || HistoryFull()) {
        if (!Exchange(why)) return false;
        if (++exchanges_since_trim_ >= kTrimEveryExchanges) {
          exchanges_since_trim_ = 0;
          Trim();
        }
        next_exchange += std::chrono::milliseconds(options_.exchange_ms);
        if (next_exchange < Clock::now()) next_exchange = Clock::now();
      }
      if (fenced_.load(std::memory_order_acquire)) {
        *why = "the partial subject " + partial_subject_ +
               " has a record this owner did not see (another owner's): starting again";
        return false;
      }
      if (idle) {
        const auto wait = std::min(
            std::chrono::milliseconds(kOwnerPollMs),
            std::chrono::duration_cast<std::chrono::milliseconds>(next_exchange - Clock::now()));
        if (wait.count() > 0) std::this_thread::sleep_for(wait);
      }
    }
    return true;
  }

 private:
  bool Setup(std::string* why) {
    subject_ = options_.event_prefix + "." + std::to_string(options_.partition);
    partial_subject_ = options_.partial_prefix + "." + std::to_string(options_.partition);
    JetStreamLogOptions log_options;
    log_options.servers = options_.servers;
    log_options.stream = options_.partial_stream;
    log_options.subject = partial_subject_;
    log_options.replicas = options_.replicas;
    log_options.writer_id = options_.node + "-r" + std::to_string(options_.revision);
    log_options.purge_on_truncate = false;
    log_options.close_timeout_ms = 0;  // a stopped owner publishes nothing more
    log_options.publish_timeout_ms = 2000;
    storage::OpenReport report;
    log_ = OpenJetStreamLog(log_options, &report, why);
    if (log_ == nullptr) return false;
    // The chain's end: up to which event sequence the partition is counted.
    if (report.last_lsn > 0) {
      bool decoded = false;
      if (!log_->ReadFrom(
              report.last_lsn,
              [&](storage::Lsn, std::string_view bytes) {
                PartialRecord record;
                decoded = DecodePartialRecord(bytes, &record);
                if (decoded) {
                  covered_ = record.covered;
                  rollup_covered_ = std::min(record.rollup_covered, record.covered);
                }
                return false;
              },
              why)) {
        return false;
      }
      if (!decoded) {
        *why = "the last record of " + partial_subject_ + " is not a partial record";
        return false;
      }
    }
    published_ = covered_;
    applied_ = covered_;
    if (!options_.history) rollup_covered_ = covered_;
    // The chain's end is stored.
    durable_cut_.store(covered_, std::memory_order_relaxed);
    durable_rollup_cut_.store(rollup_covered_, std::memory_order_relaxed);
    owner_.applied_.store(covered_, std::memory_order_relaxed);
    aggregator_ = std::make_unique<agg::Aggregator>(options_.aggregator, owner_.clock_);
    if (options_.history) {
      rollups_ = std::make_unique<storage::RollupAccumulator>(options_.history_limits);
      const agg::HashSeeds seeds = options_.aggregator.hash_seeds.value_or(agg::HashSeeds{});
      visitor_seed_ = seeds.visitor;
      session_seed_ = seeds.session;
      RestoreHistory();
    }
    next_history_flush_ = Clock::now() + std::chrono::milliseconds(options_.history_flush_ms);
    return Warm(why);
  }

  // Restores the former owner's session table and admitted values as of the chain's
  // rollup_covered_ from the node's history store, waiting up to kHistoryRestoreWait for the
  // store to apply that far (PartitionOwner's class comment).
  void RestoreHistory() {
    if (rollup_covered_ == 0 || options_.history_store == nullptr) return;  // nothing to go on
    const auto deadline = Clock::now() + kHistoryRestoreWait;
    std::string problem;
    for (;;) {
      size_t sessions = 0, bad = 0;
      std::string error;
      const ClusterHistory::Restore result = options_.history_store->RestorePartition(
          options_.partition, rollup_covered_, rollups_.get(), &sessions, &bad, &error);
      if (result == ClusterHistory::Restore::kRestored) {
        owner_.history_restored_.fetch_add(1, std::memory_order_relaxed);
        owner_.sessions_restored_.fetch_add(sessions, std::memory_order_relaxed);
        if (bad > 0 && options_.on_history_unrestored) {
          options_.on_history_unrestored(options_.partition,
                                         std::to_string(bad) + " stored sessions did not decode; " +
                                             std::to_string(sessions) + " restored");
        }
        return;
      }
      if (result == ClusterHistory::Restore::kBehind && Clock::now() < deadline &&
          !owner_.stop_.load(std::memory_order_acquire)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(kOwnerPollMs / 2));
        continue;
      }
      problem = result == ClusterHistory::Restore::kBehind
                    ? "the node's history store had not applied the partition's rollups up to "
                      "event " +
                          std::to_string(rollup_covered_) + " after " +
                          std::to_string(kHistoryRestoreWait.count()) + " s"
                : result == ClusterHistory::Restore::kPast
                    ? "the node's history store has applied the partition past event " +
                          std::to_string(rollup_covered_) + " (a newer owner's record)"
                    : "reading the node's history store: " + error;
      break;
    }
    // Nothing half restored: the sessions start empty, as the partition's first owner's did.
    rollups_ = std::make_unique<storage::RollupAccumulator>(options_.history_limits);
    owner_.history_unrestored_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_history_unrestored) {
      options_.on_history_unrestored(options_.partition,
                                     problem + ": sessions in progress count again");
    }
  }

  // Folds a counted event into the rollups (history on).
  void Fold(const analytics::EventData& event, int64_t ingest_ms) {
    rollups_->Add(storage::RollupEventOf(event, ingest_ms, visitor_seed_, session_seed_));
    owner_.history_events_.fetch_add(1, std::memory_order_relaxed);
  }

  // Too many rollup cells pending: ship them now rather than at the flush interval.
  bool HistoryFull() const {
    return rollups_ != nullptr &&
           (rollups_->pending_cells() >= options_.history_max_pending_cells ||
            rollups_->pending_pairs() >= options_.history_max_pending_pairs);
  }

  // Remembers (without counting) the ids of the events within the dedupe horizon before the
  // chain's end, so that a producer's re-send of one of them after the takeover is a duplicate
  // here as it would have been at the former owner. Reads with direct gets, like the counting
  // loop (a consumer here was seen to hang a setup after a NATS server was killed).
  //
  // The events after rollup_covered_ (counted, but their rollups not shipped by the former
  // owner) are de-duplicated the same way and the accepted ones folded into this owner's
  // rollups: the former owner decided with the same ids in the same order.
  bool Warm(std::string* why) {
    if (covered_ == 0) return true;
    // Where the reading starts: the first event whose rollups are not shipped, or the
    // horizon's start when that is earlier.
    uint64_t from = rollup_covered_ < covered_ ? rollup_covered_ + 1 : covered_ + 1;
    if (!FindHorizonStart(&from, why)) return false;
    for (uint64_t next = from; next <= covered_;) {
      NatsMsgPtr msg;
      if (!GetForWarm(next, &msg, why)) return false;
      if (msg == nullptr) return true;  // stopping
      const uint64_t sequence = natsMsg_GetSequence(msg.get());
      const bool fold = rollups_ != nullptr && sequence > rollup_covered_;
      ForEachEvent(msg.get(), [&](const analytics::EventData& event, int64_t ingest_ms) {
        const agg::IngestResult result =
            aggregator_->ApplyReplicated(event, ingest_ms, /*count=*/false);
        if (fold && result.outcome == agg::IngestOutcome::kAccepted) Fold(event, ingest_ms);
      });
      next = sequence + 1;
    }
    return true;
  }

  // Lowers *from to the first event of the dedupe horizon before the chain's end, if the
  // horizon reaches back that far.
  bool FindHorizonStart(uint64_t* from, std::string* why) {
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetMsg(&raw, owner_.session_->js(), options_.event_stream.c_str(),
                                        covered_, nullptr, &code);
    if (status != NATS_OK && code == JSNoMessageFoundErr && rollup_covered_ >= covered_) {
      return true;  // trimmed from the stream: older than the horizon, nothing to warm
    }
    if (status != NATS_OK) {
      // Not knowing would leave the de-dup table cold: a re-sent event could count twice.
      *why = "reading the chain's last event (stream sequence " + std::to_string(covered_) +
             ") to warm the de-dup table: " + DescribeNats(status, code);
      return false;
    }
    NatsMsgPtr last(raw);
    const int64_t start_ms = WallClockMs() - options_.aggregator.dedupe_horizon_seconds * 1000;
    if (StoredMs(last.get()) < start_ms) return true;
    // Where the horizon starts on the subject: at or before covered_, which is stored after it.
    bool stopping = false;
    uint64_t lo = 0;
    const bool found = FirstStoredSince(
        start_ms, covered_,
        [&](uint64_t sequence, NatsMsgPtr* msg) {
          if (!GetForWarm(sequence, msg, why)) return false;
          stopping = *msg == nullptr;
          return !stopping;
        },
        &lo);
    if (!found) return stopping;
    *from = std::min(*from, lo);
    return true;
  }

  // The subject's next message at `sequence` or later (at most covered_, which exists), retried
  // for kWarmGetLimit. False and *why when it still fails; true and a null *msg when stopping.
  bool GetForWarm(uint64_t sequence, NatsMsgPtr* msg, std::string* why) {
    const auto deadline = Clock::now() + kWarmGetLimit;
    for (;;) {
      if (owner_.stop_.load(std::memory_order_acquire)) return true;
      const natsStatus status =
          DirectGetNext(owner_.session_->js(), options_.event_stream, subject_, sequence, msg);
      if (status == NATS_OK) return true;
      owner_.read_errors_.fetch_add(1, std::memory_order_relaxed);
      if (Clock::now() >= deadline) {
        *why = "warming the de-dup table from " + subject_ + " at stream sequence " +
               std::to_string(sequence) + ": " + DescribeNats(status);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kOwnerPollMs));
    }
  }

  template <typename Visit>
  bool ForEachEvent(natsMsg* msg, Visit visit) {
    const char* ingest_text = nullptr;
    int64_t ingest_ms = 0;
    if (natsMsgHeader_Get(msg, kIngestMsHeader, &ingest_text) == NATS_OK) {
      ingest_ms = std::strtoll(ingest_text, nullptr, 10);
    }
    if (!batch_.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))) return false;
    for (const analytics::EventData& event : batch_.events()) visit(event, ingest_ms);
    return true;
  }

  void Apply(natsMsg* msg) {
    const uint64_t sequence = natsMsg_GetSequence(msg);
    const bool parsed = ForEachEvent(msg, [&](const analytics::EventData& event, int64_t ms) {
      const agg::IngestResult result = aggregator_->ApplyReplicated(event, ms);
      if (result.outcome == agg::IngestOutcome::kAccepted) {
        owner_.events_.fetch_add(1, std::memory_order_relaxed);
        if (rollups_ != nullptr) Fold(event, ms);
      } else if (result.outcome == agg::IngestOutcome::kDuplicate) {
        owner_.duplicates_.fetch_add(1, std::memory_order_relaxed);
      }
    });
    // A message that is not an event batch was not written by a node: skipped (counted), not
    // a reason to stop counting the partition.
    if (!parsed) owner_.skipped_.fetch_add(1, std::memory_order_relaxed);
    applied_ = sequence;
    owner_.applied_.store(sequence, std::memory_order_relaxed);
    // How far behind the stream this owner reads: the age of the message just applied.
    const int64_t age_ms = WallClockMs() - natsMsg_GetTime(msg) / 1'000'000;
    owner_.lag_.store(static_cast<uint64_t>(std::max<int64_t>(0, age_ms)),
                      std::memory_order_relaxed);
  }

  // Cuts what was counted since the last record and appends it to the partial chain.
  bool Exchange(std::string* why) {
    // The partial log retries a publish that failed (a NATS server gone, a stream leader being
    // elected) and refuses appends meanwhile: the delta keeps growing in the aggregator and goes
    // out at the first exchange after. A fenced log is not retried: Go sees fenced_ and starts
    // over.
    if (!log_->health().writable) return true;
    FollowSegments();
    uint64_t cut = 0;
    segment_partials_.clear();
    std::string delta = aggregator_->TakePartial([&] { cut = applied_; },
                                                 options_.segments ? &segment_partials_ : nullptr);
    std::string segments;
    for (const agg::Aggregator::SegmentPartial& partial : segment_partials_) {
      AppendSegmentPartial(segment_keys_[static_cast<size_t>(partial.id)], partial.partial,
                           &segments);
    }
    if (cut == published_ && rollup_covered_ == cut) return true;  // nothing read since
    // The history goes out every history_flush_ms (or when too much is pending); in between,
    // records say its rollups still stop at rollup_covered_.
    const bool flush = rollup_covered_ < cut && (rollups_ == nullptr || HistoryFull() ||
                                                 Clock::now() >= next_history_flush_);
    if (cut == published_ && !flush) return true;
    std::vector<std::string> parts;
    if (flush && rollups_ != nullptr) {
      parts = TakeRollupParts();
      next_history_flush_ = Clock::now() + std::chrono::milliseconds(options_.history_flush_ms);
    }
    if (parts.empty()) parts.emplace_back();
    PartialRecord record;
    record.covered = cut;
    record.revision = options_.revision;
    record.published_ms = WallClockMs();
    record.run = run_id_;
    record.delta = delta;
    record.segments = segments;
    storage::Lsn lsn = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      // The parts before the last say the rollups still stop where they did: a node applies
      // them once the last arrives.
      const bool last = i + 1 == parts.size();
      record.rollup_covered = flush && last ? cut : rollup_covered_;
      record.rollups = parts[i];
      if (!log_->Append(EncodePartialRecord(record), &lsn, why)) {
        *why = "appending to " + partial_subject_ + ": " + *why;
        return false;
      }
      owner_.history_bytes_.fetch_add(parts[i].size(), std::memory_order_relaxed);
      owner_.partials_.fetch_add(1, std::memory_order_relaxed);
      record.delta = {};  // the live delta and segments go in the first record
      record.segments = {};
    }
    const uint64_t rollup_cut = record.rollup_covered;
    // A record refused for fencing is answered false when the log stops writing.
    log_->WhenDurable(lsn, [this, cut, rollup_cut](bool stored) {
      if (!stored) {
        fenced_.store(true, std::memory_order_release);
        return;
      }
      // The log's writer: one thread.
      if (cut > durable_cut_.load(std::memory_order_relaxed)) {
        durable_cut_.store(cut, std::memory_order_release);
      }
      if (rollup_cut > durable_rollup_cut_.load(std::memory_order_relaxed)) {
        durable_rollup_cut_.store(rollup_cut, std::memory_order_release);
      }
    });
    published_ = cut;
    rollup_covered_ = record.rollup_covered;
    return true;
  }

  // Opens the cluster's live segments that are new here and closes those gone (at an exchange:
  // the aggregator's segments change on this thread only).
  void FollowSegments() {
    if (!options_.segments) return;
    const std::shared_ptr<const SegmentRegistry::Segments> cluster = options_.segments();
    if (cluster == nullptr || cluster->version == segments_version_) return;
    segments_version_ = cluster->version;
    for (auto it = segment_ids_.begin(); it != segment_ids_.end();) {
      if (std::binary_search(cluster->keys.begin(), cluster->keys.end(), it->first)) {
        ++it;
        continue;
      }
      aggregator_->CloseSegment(it->second);
      it = segment_ids_.erase(it);
    }
    uint64_t skipped = 0;
    for (const std::string& key : cluster->keys) {
      if (segment_ids_.count(key) != 0) continue;
      std::vector<agg::SegmentCondition> conditions;
      int id = -1;
      if (segment_ids_.size() < kMaxOwnerSegments && agg::ParseSegmentKey(key, &conditions)) {
        id = aggregator_->OpenSegment(std::move(conditions));
      }
      if (id < 0) {
        ++skipped;
        continue;
      }
      segment_ids_[key] = id;
      segment_keys_[static_cast<size_t>(id)] = key;
    }
    owner_.segments_counted_.store(segment_ids_.size(), std::memory_order_relaxed);
    owner_.segments_skipped_.store(skipped, std::memory_order_relaxed);
  }

  // The pending rollup cells, then the admitted values and session changes since the last flush
  // (for a next owner: storage/rollup_delta.h), as runs of at most kRollupBytesPerRecord each
  // (at least one entry each), and forgets them.
  std::vector<std::string> TakeRollupParts() {
    std::vector<std::string> parts;
    auto part = [&parts]() -> std::string* {
      if (parts.empty() || parts.back().size() >= kRollupBytesPerRecord) parts.emplace_back();
      return &parts.back();
    };
    for (const storage::RollupWrite& write : rollups_->TakeWrites()) {
      storage::AppendRollupWrite(write, part());
    }
    for (const auto& [dimension, value] : rollups_->new_values()) {
      storage::AppendRollupValueAdmitted(dimension, value, part());
    }
    rollups_->ClearNewValues();
    // Forgotten first: a session forgotten and begun again is then stored.
    storage::RollupAccumulator::SessionChanges sessions = rollups_->TakeSessionChanges();
    for (const uint64_t hash : sessions.forgotten) {
      storage::AppendRollupSessionForgotten(hash, part());
    }
    for (const auto& [hash, state] : sessions.states) {
      storage::AppendRollupSessionState(hash, state, part());
    }
    return parts;
  }

  // Drops what the partition's chain has made redundant (the class comment of PartitionOwner
  // says what and why). A failure is counted and told; the next trim tries again.
  void Trim() {
    jsCtx* js = owner_.session_->js();
    auto reader = [js](const std::string& stream, const std::string& subject) {
      return [js, &stream, &subject](uint64_t sequence, NatsMsgPtr* msg) {
        const natsStatus status = DirectGetNext(js, stream, subject, sequence, msg);
        return status == NATS_OK || status == NATS_NOT_FOUND;  // not found: none (a null msg)
      };
    };
    std::string why;
    // Events: those a durable record covers, except the de-dup horizon's, which a next owner
    // re-reads (Warm). A follower behind its leader can only make this purge less.
    const uint64_t covered = durable_cut_.load(std::memory_order_acquire);
    const int64_t horizon_start_ms =
        WallClockMs() - options_.aggregator.dedupe_horizon_seconds * 1000;
    uint64_t below = 0;
    bool ok = true;
    if (covered >= events_kept_from_) {
      ok = FirstStoredSince(horizon_start_ms, covered, reader(options_.event_stream, subject_),
                            &below);
      if (!ok) {
        why = "reading " + subject_ + " to trim it";
      } else if ((below = std::min(below, durable_rollup_cut_.load(std::memory_order_acquire) +
                                              1)) > events_kept_from_) {
        // Not the events whose rollups no stored record covers: a next owner folds them again.
        ok = PurgeSubjectBelow(js, options_.event_stream, subject_, below, &why);
        if (ok) events_kept_from_ = below;
      }
    }
    // Partials: the chain's records older than kPartialRetentionMs, except its last.
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (ok && js_GetLastMsg(&raw, js, options_.partial_stream.c_str(), partial_subject_.c_str(),
                            nullptr, &code) == NATS_OK) {
      NatsMsgPtr last(raw);
      const uint64_t last_sequence = natsMsg_GetSequence(last.get());
      ok = last_sequence <= 1 ||
           FirstStoredSince(WallClockMs() - kPartialRetentionMs, last_sequence - 1,
                            reader(options_.partial_stream, partial_subject_), &below);
      if (!ok) {
        why = "reading " + partial_subject_ + " to trim it";
      } else if (last_sequence > 1 && below > partials_kept_from_) {
        ok = PurgeSubjectBelow(js, options_.partial_stream, partial_subject_, below, &why);
        if (ok) partials_kept_from_ = below;
      }
    }
    if (!ok) {
      owner_.trim_failures_.fetch_add(1, std::memory_order_relaxed);
      if (options_.on_trim_failed) options_.on_trim_failed(options_.partition, why);
    }
  }

  PartitionOwner& owner_;
  const PartitionOwnerOptions& options_;
  std::string subject_;
  std::string partial_subject_;
  // Declared before the log: the log's writer may still answer a waiter (which sets fenced_)
  // while the log is destroyed.
  std::atomic<bool> fenced_{false};
  std::unique_ptr<storage::EventLog> log_;
  std::unique_ptr<agg::Aggregator> aggregator_;
  std::unique_ptr<storage::RollupAccumulator> rollups_;  // history on
  uint64_t visitor_seed_ = 0, session_seed_ = 0;         // the cluster's, for the rollups
  const uint64_t run_id_ = DrawRunId();
  Clock::time_point next_history_flush_{};
  // The cluster's live segments counted here: by canonical key, and keys by aggregator id.
  uint64_t segments_version_ = 0;
  std::map<std::string, int> segment_ids_;
  std::array<std::string, agg::kMaxLiveSegments> segment_keys_;
  std::vector<agg::Aggregator::SegmentPartial> segment_partials_;
  analytics::EventBatch batch_;
  uint64_t covered_ = 0;    // the chain's end at setup
  uint64_t applied_ = 0;    // the last event sequence counted
  uint64_t published_ = 0;  // the last sequence a record covers
  // The last event sequence whose rollups are in a record appended (rollup_covered_) or stored
  // (durable_rollup_cut_, set by the partial log's writer thread).
  uint64_t rollup_covered_ = 0;
  std::atomic<uint64_t> durable_rollup_cut_{0};
  // The last event sequence a stored record covers (set by the partial log's writer thread).
  std::atomic<uint64_t> durable_cut_{0};
  int exchanges_since_trim_ = 0;
  uint64_t events_kept_from_ = 1;  // the subjects' messages below these are purged
  uint64_t partials_kept_from_ = 1;
};

PartitionOwner::PartitionOwner(NatsSession* session, PartitionOwnerOptions options,
                               const agg::Clock& clock)
    : session_(session), options_(std::move(options)), clock_(clock) {
  thread_ = std::thread([this] { Loop(); });
}

PartitionOwner::~PartitionOwner() {
  stop_.store(true, std::memory_order_release);
  thread_.join();
}

std::string PartitionOwner::last_problem() const {
  std::lock_guard lock(problem_mu_);
  return last_problem_;
}

void PartitionOwner::Loop() {
  while (!stop_.load(std::memory_order_acquire)) {
    std::string why;
    bool done = false;
    {
      Run run(*this);
      done = run.Go(&why);
    }
    counting_.store(false, std::memory_order_release);
    if (done) return;
    restarts_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(problem_mu_);
      last_problem_ = why;
    }
    if (options_.on_restart) options_.on_restart(options_.partition, why);
    for (int i = 0; i < 5 && !stop_.load(std::memory_order_acquire); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(kOwnerPollMs));
    }
  }
}

}  // namespace rta::cluster
