#include "server/cluster/cluster_history.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "server/cluster/jetstream_log.h"
#include "server/storage/rollup_delta.h"

namespace rta::cluster {
namespace {

constexpr int kPollMs = 50;  // caught up: how often to look for new records
// Meta keys of the store: the stream sequence to read on from (u64 LE), and per partition
// ("partition" NUL, u32 LE) the chain's rollup_covered applied (u64 LE).
constexpr std::string_view kNextSequenceKey = "cluster_next_sequence";
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

}  // namespace

std::unique_ptr<ClusterHistory> ClusterHistory::Open(NatsSession* session,
                                                     ClusterHistoryOptions options,
                                                     const agg::Clock& clock, std::string* error) {
  std::unique_ptr<ClusterHistory> history(new ClusterHistory(session, std::move(options)));
  const agg::Clock* clock_ptr = &clock;
  history->store_ = storage::RollupStore::Open(
      history->options_.dir, history->options_.retention,
      [clock_ptr] { return clock_ptr->NowMs() / 1000; }, error);
  if (history->store_ == nullptr) return nullptr;
  if (!history->LoadPositions(error)) return nullptr;
  history->thread_ = std::thread([raw = history.get()] { raw->Loop(); });
  return history;
}

ClusterHistory::ClusterHistory(NatsSession* session, ClusterHistoryOptions options)
    : session_(session), options_(std::move(options)) {}

ClusterHistory::~ClusterHistory() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
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
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return true;
    }
    NatsMsgPtr msg;
    const natsStatus status =
        DirectGetNext(session_->js(), options_.stream, all, next_sequence_, &msg);
    if (status == NATS_NOT_FOUND) {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(kPollMs), [&] { return stopping_; });
      continue;
    }
    if (status != NATS_OK) {
      *why = "reading " + options_.stream + " at sequence " + std::to_string(next_sequence_) +
             ": " + DescribeNats(status);
      return false;
    }
    const uint64_t sequence = natsMsg_GetSequence(msg.get());
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
  next_sequence_seen_.store(next_sequence_, std::memory_order_relaxed);
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
  return stats;
}

}  // namespace rta::cluster
