#include "server/cluster/cluster_history.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "server/cluster/jetstream_log.h"
#include "server/cluster/subject_trim.h"
#include "server/storage/rollup_delta.h"

namespace rta::cluster {
namespace {

constexpr int kPollMs = 50;  // caught up: how often to look for new records
// Caught up with a tap: how long to wait for the merger's next read before reading again (the
// merger polls every 50 ms when it is caught up too).
constexpr int kTapWaitMs = 500;
// Meta keys of the store: the stream sequence to read on from (u64 LE), and per partition
// ("partition" NUL, u32 LE) the chain's rollup_covered applied (u64 LE).
constexpr std::string_view kNextSequenceKey = "cluster_next_sequence";
// From which stream sequence on every record is applied (u64 LE): what a peer's copy offers.
constexpr std::string_view kSinceKey = "cluster_since_sequence";
constexpr std::string_view kPartitionPrefix{"partition\0", 10};
// The owners' history state (rollup_delta.h), per partition (u32 LE): "pvalue" NUL, partition,
// the dimension as one byte, the value -> "" (an admitted value); "psession" NUL, partition,
// the session hash (u64 LE) -> its state.
constexpr std::string_view kValuePrefix{"pvalue\0", 7};
constexpr std::string_view kSessionPrefix{"psession\0", 9};

std::string PartitionKey(std::string_view prefix, uint32_t partition) {
  std::string key(prefix);
  key.append(reinterpret_cast<const char*>(&partition), 4);
  return key;
}

// The store's meta writes for one state entry of `partition`'s owner.
storage::RollupStore::MetaWrite StateWrite(uint32_t partition,
                                           const storage::RollupStateEntry& entry) {
  using Kind = storage::RollupStateEntry::Kind;
  if (entry.kind == Kind::kValueAdmitted) {
    std::string key = PartitionKey(kValuePrefix, partition);
    key.push_back(static_cast<char>(entry.dimension));
    key.append(entry.bytes);
    return {std::move(key), ""};
  }
  std::string key = PartitionKey(kSessionPrefix, partition);
  key.append(storage::MetaU64(entry.session_hash));
  if (entry.kind == Kind::kSessionForgotten) return {std::move(key), "", /*erase=*/true};
  return {std::move(key), entry.bytes};
}

// Where a copy is downloaded, and where the store it replaces waits until the copy is in place.
std::string IncomingDir(const std::string& dir) { return dir + ".copy"; }
std::string ReplacedDir(const std::string& dir) { return dir + ".replaced"; }

// Ends a replacement a crash interrupted: the store is `dir` if it is there (the copy made it),
// else the replaced one, which goes back (the copy is made again). Downloads in progress go.
void FinishInterruptedCopy(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  if (!fs::exists(dir, ignored) && fs::exists(ReplacedDir(dir), ignored)) {
    fs::rename(ReplacedDir(dir), dir, ignored);
  }
  fs::remove_all(IncomingDir(dir), ignored);
  fs::remove_all(ReplacedDir(dir), ignored);
}

}  // namespace

std::unique_ptr<ClusterHistory> ClusterHistory::Open(NatsSession* session,
                                                     ClusterHistoryOptions options,
                                                     const agg::Clock& clock, std::string* error) {
  std::unique_ptr<ClusterHistory> history(new ClusterHistory(session, std::move(options)));
  FinishInterruptedCopy(history->options_.dir);
  const agg::Clock* clock_ptr = &clock;
  history->store_ = storage::RollupStore::Open(
      history->options_.dir, history->options_.retention,
      [clock_ptr] { return clock_ptr->NowMs() / 1000; }, error);
  if (history->store_ == nullptr) return nullptr;
  if (!history->LoadPositions(error)) return nullptr;
  if (!history->options_.node.empty()) {
    if (!history->CopyFromPeerIfBehind(clock, error)) return nullptr;
    ClusterHistory* raw = history.get();
    HistoryExporter::Source source;
    source.offer = [raw] {
      return HistoryOffer{raw->options_.node, raw->since_seen_.load(std::memory_order_relaxed),
                          raw->next_sequence_seen_.load(std::memory_order_relaxed)};
    };
    source.checkpoint = [raw](const std::string& dir, std::string* why) {
      return raw->store_->Checkpoint(dir, why);
    };
    std::string why;
    history->exporter_ = HistoryExporter::Start(session, history->options_.node,
                                                history->options_.dir, std::move(source), &why);
    // The node works without: only other nodes' copies need it.
    if (history->exporter_ == nullptr && history->options_.warn) {
      history->options_.warn("cluster_history_exporter_failed", why);
    }
  }
  history->thread_ = std::thread([raw = history.get()] { raw->Loop(); });
  return history;
}

// Whether the stream lost a record at or after `from` (*first_missing: the first such
// sequence). A hole in the sequences is a trimmed record. The owners trim only records older
// than kPartialRetentionMs (except each chain's last, kept however old), so a record stored
// well within that age means nothing after it is trimmed either.
bool ClusterHistory::FindTrimmed(uint64_t from, uint64_t* first_missing, std::string* why) {
  *first_missing = 0;
  const int64_t young_since_ms = WallClockMs() - kPartialRetentionMs / 2;
  const std::string all = options_.prefix + ".>";
  uint64_t sequence = from;
  // Past at most one kept old record per chain; more than this many: assume something is missing.
  for (int old_records = 0; old_records < 4096; ++old_records) {
    NatsMsgPtr msg;
    const natsStatus status = DirectGetNext(session_->js(), options_.stream, all, sequence, &msg);
    if (status == NATS_NOT_FOUND) return true;  // nothing from `sequence` on
    if (status != NATS_OK) {
      *why = "reading " + options_.stream + " at sequence " + std::to_string(sequence) + ": " +
             DescribeNats(status);
      return false;
    }
    const uint64_t found = natsMsg_GetSequence(msg.get());
    if (found > sequence) {
      *first_missing = sequence;
      return true;
    }
    if (StoredMs(msg.get()) >= young_since_ms) return true;
    sequence = found + 1;
  }
  *first_missing = sequence;
  return true;
}

bool ClusterHistory::CopyFromPeerIfBehind(const agg::Clock& clock, std::string* why) {
  auto warn = [&](const std::string& event, const std::string& detail) {
    if (options_.warn) options_.warn(event, detail);
  };
  uint64_t first_missing = 0;
  std::string failed;
  if (!FindTrimmed(next_sequence_, &first_missing, &failed)) {
    copy_failures_.fetch_add(1, std::memory_order_relaxed);
    warn("cluster_history_copy_failed", failed + "; reading on without a copy");
    return true;
  }
  if (first_missing == 0) return true;  // the stream holds every record this store lacks
  const std::string incoming = IncomingDir(options_.dir);
  HistoryCopyReport report;
  if (!CopyPeerHistory(session_, options_.node, first_missing, incoming, options_.offer_wait,
                       &report, &failed)) {
    copy_failures_.fetch_add(1, std::memory_order_relaxed);
    warn("cluster_history_copy_failed", failed + "; reading on without a copy");
    return true;
  }
  if (report.peer.empty()) {
    warn("cluster_history_copy_unavailable",
         "the partial stream no longer holds sequence " + std::to_string(first_missing) +
             " and no other node offered a history that has it");
    return true;
  }
  // The copy must open and check out before it replaces anything.
  const agg::Clock* clock_ptr = &clock;
  auto now_s = [clock_ptr] { return clock_ptr->NowMs() / 1000; };
  {
    auto copied = storage::RollupStore::Open(incoming, options_.retention, now_s, &failed);
    if (copied == nullptr || !copied->VerifyChecksums(&failed)) {
      copy_failures_.fetch_add(1, std::memory_order_relaxed);
      std::error_code ignored;
      std::filesystem::remove_all(incoming, ignored);
      warn("cluster_history_copy_failed",
           "the copy of " + report.peer + "'s history: " + failed + "; reading on without it");
      return true;
    }
  }
  // Replaced in two renames; FinishInterruptedCopy ends a crash between them.
  store_.reset();
  std::error_code error;
  std::filesystem::rename(options_.dir, ReplacedDir(options_.dir), error);
  if (!error) std::filesystem::rename(incoming, options_.dir, error);
  if (error) {
    *why = "replacing the history store with " + report.peer + "'s copy: " + error.message();
    return false;
  }
  std::filesystem::remove_all(ReplacedDir(options_.dir), error);
  store_ = storage::RollupStore::Open(options_.dir, options_.retention, now_s, why);
  if (store_ == nullptr || !LoadPositions(why)) return false;
  copies_.fetch_add(1, std::memory_order_relaxed);
  copy_bytes_.fetch_add(report.bytes, std::memory_order_relaxed);
  warn("cluster_history_copied",
       "the partial stream no longer holds sequence " + std::to_string(first_missing) +
           ": copied " + report.peer + "'s history (whole from sequence " +
           std::to_string(report.peer_since) + ", " + std::to_string(report.files) + " files, " +
           std::to_string(report.bytes) + " bytes, " + std::to_string(report.ms) +
           " ms); reading on from sequence " + std::to_string(next_sequence_));
  return true;
}

ClusterHistory::ClusterHistory(NatsSession* session, ClusterHistoryOptions options)
    : session_(session), options_(std::move(options)) {}

ClusterHistory::~ClusterHistory() {
  exporter_.reset();  // no copy is served from a closing store
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (options_.tap != nullptr) options_.tap->Stop();  // wakes a Take
  if (thread_.joinable()) thread_.join();
}

bool ClusterHistory::LoadPositions(std::string* why) {
  partitions_.clear();
  std::string value;
  bool found = false;
  if (!store_->GetMeta(std::string(kNextSequenceKey), &value, &found, why)) return false;
  next_sequence_ = 1;
  fresh_ = !found;
  if (found && value.size() == 8) std::memcpy(&next_sequence_, value.data(), 8);
  // A store written before the key existed is known whole from where it reads on only.
  bool since_found = false;
  if (!store_->GetMeta(std::string(kSinceKey), &value, &since_found, why)) return false;
  since_ = fresh_ ? 0 : next_sequence_;
  if (since_found && value.size() == 8) std::memcpy(&since_, value.data(), 8);
  since_dirty_ = !fresh_ && !since_found;
  bool bad = false;
  if (!store_->ScanMeta(
          kPartitionPrefix,
          [&](std::string_view key, std::string_view stored) {
            if (key.size() != kPartitionPrefix.size() + 4 || stored.size() != 8) {
              bad = true;
              return;
            }
            uint32_t partition = 0;
            std::memcpy(&partition, key.data() + kPartitionPrefix.size(), 4);
            std::memcpy(&partitions_[partition].rollup_covered, stored.data(), 8);
          },
          why)) {
    return false;
  }
  if (bad) {
    *why = "the history store " + options_.dir + " has a malformed partition position";
    return false;
  }
  {
    std::lock_guard lock(store_mu_);
    stored_covered_.clear();
    for (const auto& [partition, state] : partitions_) {
      stored_covered_[partition] = state.rollup_covered;
    }
  }
  next_sequence_seen_.store(next_sequence_, std::memory_order_relaxed);
  since_seen_.store(since_, std::memory_order_relaxed);
  return true;
}

void ClusterHistory::Loop() {
  for (;;) {
    std::string why;
    if (Follow(&why)) return;
    if (options_.warn) options_.warn("cluster_history_restarted", why);
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; })) return;
  }
}

// Like PartialMerger::Follow: "the next message on rta.partial.> at sequence n or later", one
// direct get per message.
bool ClusterHistory::Follow(std::string* why) {
  if (!LoadPositions(why)) return false;
  const std::string all = options_.prefix + ".>";
  bool level_with_tap = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return true;
    }
    NatsMsgPtr msg;
    // What the merger read, when it is this read's answer: the stream is read once. Level with
    // the merger (the last message came from it), wait for its next read rather than race it.
    if (options_.tap != nullptr) {
      msg = options_.tap
                ->Take(next_sequence_, std::chrono::milliseconds(level_with_tap ? kTapWaitMs : 0))
                .msg;
    }
    level_with_tap = msg != nullptr;
    if (msg != nullptr) {
      shared_reads_.fetch_add(1, std::memory_order_relaxed);
    } else {
      const natsStatus status =
          DirectGetNext(session_->js(), options_.stream, all, next_sequence_, &msg);
      if (status == NATS_NOT_FOUND) {
        // Caught up: the merger's next read is likely this one's answer; wait for it first, and
        // read again when it does not come (the merger stopped or fell behind).
        if (options_.tap != nullptr) {
          msg = options_.tap->Take(next_sequence_, std::chrono::milliseconds(kTapWaitMs)).msg;
        } else {
          std::unique_lock lock(mu_);
          wake_.wait_for(lock, std::chrono::milliseconds(kPollMs), [&] { return stopping_; });
        }
        if (msg == nullptr) continue;
        level_with_tap = true;
        shared_reads_.fetch_add(1, std::memory_order_relaxed);
      } else if (status != NATS_OK) {
        *why = "reading " + options_.stream + " at sequence " + std::to_string(next_sequence_) +
               ": " + DescribeNats(status);
        return false;
      } else {
        own_reads_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    const uint64_t sequence = natsMsg_GetSequence(msg.get());
    // Whole from here: the first record a new store reads, or the first after a gap.
    if (fresh_ || sequence > next_sequence_) {
      since_ = sequence;
      since_dirty_ = true;
    }
    if (sequence > next_sequence_) {
      // Trimmed before this node read them: their rollups are not here.
      if (fresh_) {
        if (options_.warn && sequence > 1) {
          options_.warn("cluster_history_starts_late",
                        "a new history store: the partial stream holds records from sequence " +
                            std::to_string(sequence) + " on only");
        }
      } else {
        gap_records_.fetch_add(sequence - next_sequence_, std::memory_order_relaxed);
        if (options_.warn) {
          options_.warn("cluster_history_gap",
                        "the partial stream's sequences " + std::to_string(next_sequence_) +
                            " to " + std::to_string(sequence - 1) +
                            " were trimmed before this node read them: their rollups are "
                            "missing from its history");
        }
      }
    }
    if (!Apply(msg.get(), sequence, why)) return false;
  }
}

bool ClusterHistory::Apply(natsMsg* msg, uint64_t sequence, std::string* why) {
  const std::string subject = natsMsg_GetSubject(msg);
  const size_t dot = subject.rfind('.');
  char* end = nullptr;
  const unsigned long number =
      dot == std::string::npos ? 0 : std::strtoul(subject.c_str() + dot + 1, &end, 10);
  storage::RollupRun run;
  std::vector<storage::RollupStore::MetaWrite> meta;
  std::map<uint32_t, uint64_t> covered;  // the partitions this write moves
  uint64_t applied = 0;
  auto decode = [&](std::string_view bytes) {
    std::string error;
    if (!storage::DecodeRollupRun(bytes, &run, &error)) {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      if (options_.warn) {
        options_.warn("cluster_history_malformed",
                      subject + " at sequence " + std::to_string(sequence) + ": " + error);
      }
    }
  };
  const bool ours = dot != std::string::npos && end != nullptr && *end == '\0';
  const auto partition = static_cast<uint32_t>(number);
  const bool framed =
      ours && ForEachLogRecord(msg, [&](storage::Lsn, std::string_view bytes) {
        PartialRecord record;
        if (!DecodePartialRecord(bytes, &record)) {
          malformed_.fetch_add(1, std::memory_order_relaxed);
          return true;
        }
        Partition& state = partitions_[partition];
        if (record.run != state.run) {
          // Parts held from an owner that died before its flush's last part: the next owner folds
          // those events again.
          parts_dropped_.fetch_add(state.parts.size(), std::memory_order_relaxed);
          state.parts.clear();
          state.run = record.run;
        }
        // A flush's last record says its rollups reach its cut (rollup_covered == covered); the
        // parts before it (rollups, rollup_covered < covered) wait for it.
        const bool last = record.rollup_covered >= record.covered;
        if (!last) {
          if (!record.rollups.empty() && record.rollup_covered == state.rollup_covered) {
            if (state.parts.empty()) state.first_part_sequence = sequence;
            state.parts.emplace_back(record.rollups);
          }
          return true;  // a part whose flush is applied already (read again), or the live delta
        }
        if (record.rollup_covered <= state.rollup_covered) return true;  // applied already
        run.state.clear();
        for (const std::string& part : state.parts) decode(part);
        decode(record.rollups);
        // The owner's session changes and values, in its order, beside its cells.
        for (const storage::RollupStateEntry& entry : run.state) {
          meta.push_back(StateWrite(partition, entry));
        }
        state.parts.clear();
        state.rollup_covered = record.rollup_covered;
        covered[partition] = state.rollup_covered;
        meta.push_back(
            {PartitionKey(kPartitionPrefix, partition), storage::MetaU64(state.rollup_covered)});
        ++applied;
        return true;
      });
  if (!framed) malformed_.fetch_add(1, std::memory_order_relaxed);
  // Read on after this message, but from the first held part on after a restart.
  uint64_t next = sequence + 1;
  for (const auto& [held, state] : partitions_) {
    if (!state.parts.empty()) next = std::min(next, state.first_part_sequence);
  }
  meta.push_back({std::string(kNextSequenceKey), storage::MetaU64(next)});
  if (since_dirty_) meta.push_back({std::string(kSinceKey), storage::MetaU64(since_)});
  // Not synced: a crash loses a tail of writes together with the positions they moved (one
  // atomic batch), and those records are read again from the stream.
  {
    std::lock_guard lock(store_mu_);
    if (!store_->Write(run.writes, meta, /*sync=*/false, why)) {
      write_failures_.fetch_add(1, std::memory_order_relaxed);
      // Follow() starts again from the stored positions (held parts included).
      *why = "writing the history store: " + *why;
      return false;
    }
    for (const auto& [moved, to] : covered) stored_covered_[moved] = to;
  }
  next_sequence_ = sequence + 1;
  fresh_ = false;
  since_dirty_ = false;
  next_sequence_seen_.store(next_sequence_, std::memory_order_relaxed);
  since_seen_.store(since_, std::memory_order_relaxed);
  writes_.fetch_add(1, std::memory_order_relaxed);
  cells_written_.fetch_add(run.writes.size(), std::memory_order_relaxed);
  records_applied_.fetch_add(applied, std::memory_order_relaxed);
  return true;
}

ClusterHistory::Restore ClusterHistory::RestorePartition(uint32_t partition,
                                                         uint64_t rollup_covered,
                                                         storage::RollupAccumulator* accumulator,
                                                         size_t* sessions, size_t* bad,
                                                         std::string* error) {
  *sessions = 0;
  *bad = 0;
  std::lock_guard lock(store_mu_);
  const auto found = stored_covered_.find(partition);
  const uint64_t stored = found == stored_covered_.end() ? 0 : found->second;
  if (stored < rollup_covered) return Restore::kBehind;
  if (stored > rollup_covered) return Restore::kPast;
  const std::string values = PartitionKey(kValuePrefix, partition);
  if (!store_->ScanMeta(
          values,
          [&](std::string_view key, std::string_view) {
            // Written by StateWrite from a decoded entry: a dimension byte and a value.
            if (key.size() <= values.size() + 1) return;
            const auto dimension = static_cast<unsigned char>(key[values.size()]);
            if (dimension < storage::kRollupDimensionCount) {
              accumulator->Admit(dimension, key.substr(values.size() + 1));
            }
          },
          error)) {
    return Restore::kFailed;
  }
  // After the values: a session's stored values are names, found among the admitted ones.
  const std::string prefix = PartitionKey(kSessionPrefix, partition);
  if (!store_->ScanMeta(
          prefix,
          [&](std::string_view key, std::string_view state) {
            uint64_t hash = 0;
            std::string why;
            if (key.size() == prefix.size() + 8) std::memcpy(&hash, key.data() + prefix.size(), 8);
            if (hash != 0 && accumulator->RestoreSession(hash, state, &why)) {
              ++*sessions;
            } else {
              ++*bad;
            }
          },
          error)) {
    return Restore::kFailed;
  }
  return Restore::kRestored;
}

ClusterHistoryStats ClusterHistory::stats() const {
  ClusterHistoryStats stats;
  stats.records_applied = records_applied_.load(std::memory_order_relaxed);
  stats.writes = writes_.load(std::memory_order_relaxed);
  stats.cells_written = cells_written_.load(std::memory_order_relaxed);
  stats.write_failures = write_failures_.load(std::memory_order_relaxed);
  stats.malformed = malformed_.load(std::memory_order_relaxed);
  stats.parts_dropped = parts_dropped_.load(std::memory_order_relaxed);
  stats.gap_records = gap_records_.load(std::memory_order_relaxed);
  stats.next_sequence = next_sequence_seen_.load(std::memory_order_relaxed);
  stats.since = since_seen_.load(std::memory_order_relaxed);
  stats.copies = copies_.load(std::memory_order_relaxed);
  stats.copy_failures = copy_failures_.load(std::memory_order_relaxed);
  stats.copy_bytes = copy_bytes_.load(std::memory_order_relaxed);
  stats.shared_reads = shared_reads_.load(std::memory_order_relaxed);
  stats.own_reads = own_reads_.load(std::memory_order_relaxed);
  if (exporter_ != nullptr) {
    stats.exports = exporter_->copies_opened();
    stats.export_bytes = exporter_->bytes_served();
  }
  return stats;
}

}  // namespace rta::cluster
