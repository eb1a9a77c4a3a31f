#include "server/durability.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "analytics.pb.h"
#include "server/log.h"
#include "server/logged_events.h"
#include "server/storage/ingest_record.h"
#include "server/storage/segment_log.h"

namespace rta::server {
namespace {

// Records replayed between two ticks: a tick folds the shard deltas into the windows, so that
// the deltas stay small during a long replay.
constexpr uint64_t kReplayEventsPerTick = 200'000;

std::string Ms(std::chrono::steady_clock::duration duration) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
}

storage::FsyncMode FsyncModeOf(const std::string& name) {
  if (name == "interval") return storage::FsyncMode::kInterval;
  if (name == "never") return storage::FsyncMode::kNever;
  return storage::FsyncMode::kAlways;
}

// Cluster mode: the node's ingest log publishes each record's events to their partitions'
// subjects; it reads records back as recovery does (LoggedEventReader), on its writer thread.
std::unique_ptr<storage::EventLog> OpenClusterIngestLog(cluster::ClusterNode& cluster,
                                                        std::string* error) {
  auto reader = std::make_shared<LoggedEventReader>();
  auto log = cluster.OpenIngestLog(
      [reader, record = storage::IngestRecord()](
          std::string_view bytes,
          const std::function<void(const analytics::EventData&, int64_t)>& apply) mutable {
        std::string why;
        return reader->Read(0, bytes, &record, apply, &why);
      },
      error);
  if (log != nullptr) {
    LogInfo("cluster_ingest_log_opened", {{"partitions", std::to_string(cluster.partitions())}});
  }
  return log;
}

}  // namespace

std::unique_ptr<Durability> Durability::Open(const ServerConfig& config, ServerMetrics& metrics,
                                             cluster::ClusterNode* cluster, std::string* error) {
  std::unique_ptr<Durability> durability(new Durability(config, metrics));
  durability->cluster_ = cluster;
  std::error_code fs_error;
  std::filesystem::create_directories(config.data_dir, fs_error);
  if (fs_error) {
    *error = "data_dir " + config.data_dir + ": cannot create: " + fs_error.message();
    return nullptr;
  }
  // One server per directory: two writers would interleave their logs.
  const std::string lock_path = config.data_dir + "/LOCK";
  durability->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (durability->lock_fd_ < 0) {
    *error = "data_dir: cannot open " + lock_path + ": " + std::strerror(errno);
    return nullptr;
  }
  if (::flock(durability->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    *error = "data_dir " + config.data_dir + " is in use by another analytics_server (" +
             lock_path + " is locked); give each server its own --data-dir";
    return nullptr;
  }
  storage::LogOptions options;
  options.dir = config.data_dir + "/log";
  options.fsync = FsyncModeOf(config.fsync);
  options.interval_ms = static_cast<int>(config.fsync_interval_ms);
  options.segment_bytes = config.log_segment_bytes;
  options.max_pending_bytes = config.log_max_pending_bytes;
  options.skip_corrupt = config.skip_corrupt_records != 0;
  storage::OpenReport report;
  if (cluster == nullptr) {
    durability->log_ = storage::OpenSegmentLog(options, &report, error);
  } else {
    durability->log_ = OpenClusterIngestLog(*cluster, error);
  }
  if (durability->log_ == nullptr) {
    *error = "event log: " + *error;
    return nullptr;
  }
  for (const std::string& message : report.messages) {
    LogWarn("event_log_repaired", {{"detail", message}});
  }
  metrics.LogOpened(report.torn_tail_bytes_truncated, report.corrupt_records_skipped);
  durability->store_ = storage::CheckpointStore::Open(config.data_dir + "/store", error);
  if (durability->store_ == nullptr) return nullptr;
  durability->next_checkpoint_ =
      std::chrono::steady_clock::now() + std::chrono::seconds(config.checkpoint_interval_s);
  durability->store_thread_ = std::thread([d = durability.get()] { d->StoreThread(); });
  return durability;
}

Durability::~Durability() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (store_thread_.joinable()) store_thread_.join();
  log_.reset();
  store_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::unique_ptr<agg::Aggregator> Durability::Recover(const agg::Clock& clock,
                                                     ProducerTable& producers, SnapshotHub& hub,
                                                     std::string* error) {
  if (cluster_ != nullptr) {
    // The view is rebuilt from the partial stream by the cluster's merger, not from this
    // directory (docs/design/cluster.md): an empty aggregator with the cluster's hash seeds.
    agg::AggregatorConfig view = config_.aggregator;
    view.hash_seeds = cluster_->seeds();
    return std::make_unique<agg::Aggregator>(view, clock);
  }
  const auto start = std::chrono::steady_clock::now();
  storage::Checkpoint checkpoint;
  bool found = false;
  if (!store_->Load(&checkpoint, &found, error)) return nullptr;
  std::unique_ptr<agg::Aggregator> aggregator;
  if (found) {
    // Sequences published after the checkpoint by the process that stopped must stay below the
    // restored aggregator's, so that a dashboard resuming with one of them is answered with
    // what changed since (not with a sequence it has already seen). At most one snapshot per
    // push_min_interval_ms (early ticks) or per tick was published.
    const int64_t elapsed_ms = std::max<int64_t>(0, clock.NowMs() - checkpoint.taken_ms);
    const uint64_t gap = static_cast<uint64_t>(elapsed_ms) /
                             std::max<uint32_t>(1, std::min(config_.tick_ms,
                                                            config_.push_min_interval_ms)) +
                         1000;
    aggregator = agg::Aggregator::Restore(config_.aggregator, clock, checkpoint.aggregator, gap,
                                          error);
    if (aggregator == nullptr) {
      *error = "checkpoint in " + config_.data_dir + "/store: " + *error;
      return nullptr;
    }
    if (!producers.Restore(checkpoint.producers, error)) return nullptr;
    if (!checkpoint.history.empty() && !hub.mutable_history().Restore(checkpoint.history, error)) {
      return nullptr;
    }
    last_cut_ = checkpoint.cut_lsn;
  } else {
    aggregator = std::make_unique<agg::Aggregator>(config_.aggregator, clock);
  }
  const auto loaded = std::chrono::steady_clock::now();

  uint64_t records = 0, events = 0, signals = 0, since_tick = 0;
  LoggedEventReader reader;
  storage::IngestRecord record;
  std::string why;
  auto apply = [&](const analytics::EventData& one, int64_t ingest_ms) {
    aggregator->ApplyLogged(one, ingest_ms);
    ++events;
    if (++since_tick >= kReplayEventsPerTick) {
      aggregator->Tick();
      since_tick = 0;
    }
  };
  auto apply_signal = [&](agg::SessionSignal signal, int64_t event_ms) {
    aggregator->RecordSignal(signal, event_ms);
    ++signals;
  };
  bool damaged = false;
  const bool read_ok = log_->ReadFrom(
      checkpoint.cut_lsn + 1,
      [&](storage::Lsn lsn, std::string_view bytes) {
        ++records;
        if (!reader.Read(lsn, bytes, &record, apply, &why, apply_signal)) {
          damaged = true;
          return false;
        }
        if (!record.producer_id.empty()) {
          producers.ApplyLogged(record.producer_id,
                                {record.sequence, record.accepted, record.duplicates,
                                 record.rejected},
                                record.ingest_ms);
        }
        return true;
      },
      error);
  if (!read_ok || damaged) {
    if (damaged) *error = why;
    *error = "replaying the event log: " + *error;
    return nullptr;
  }
  aggregator->Tick();
  const auto end = std::chrono::steady_clock::now();
  metrics_.Recovered(records, events,
                     std::chrono::duration<double>(end - start).count());
  LogInfo("recovered", {{"checkpoint", found ? "yes" : "none"},
                        {"checkpoint_lsn", std::to_string(checkpoint.cut_lsn)},
                        {"checkpoint_load_ms", Ms(loaded - start)},
                        {"replayed_records", std::to_string(records)},
                        {"replayed_events", std::to_string(events)},
                        {"replay_ms", Ms(end - loaded)},
                        {"replayed_signals", std::to_string(signals)},
                        {"producers", std::to_string(producers.size())}});
  return aggregator;
}

void Durability::Cut(agg::Aggregator& aggregator, ProducerTable& producers,
                     const SnapshotHub& hub, PendingCheckpoint* out) {
  storage::Checkpoint& checkpoint = out->checkpoint;
  out->aggregator = aggregator.Checkpoint(
      [&] {
        // Inside the freeze: no ingest section is open, so the log's tail and the producer
        // table are exactly what the aggregator has counted.
        checkpoint.cut_lsn = log_->last_lsn();
        checkpoint.producers = producers.Serialize();
      },
      /*defer_completion=*/true);
  out->owner = &aggregator;
  const agg::CheckpointResult& result = out->aggregator;
  checkpoint.taken_ms = result.time_ms;
  checkpoint.last_sequence = result.sequence;
  // The history up to the previous tick (this tick's snapshot is recorded when it is
  // published); pointers only, serialized on the store thread.
  out->history = hub.history().CopyForCheckpoint();
  metrics_.CheckpointStall(static_cast<double>(result.stall_us) / 1e6);
}

bool Durability::MaybeCheckpoint(agg::Aggregator& aggregator, ProducerTable& producers,
                                 const SnapshotHub& hub) {
  if (cluster_ != nullptr) return false;  // the cluster's state is in its streams
  const auto now = std::chrono::steady_clock::now();
  if (now < next_checkpoint_) return false;
  next_checkpoint_ = now + std::chrono::seconds(config_.checkpoint_interval_s);
  {
    std::lock_guard retry(retry_mutex_);
    if (log_->last_lsn() == last_cut_ && !retry_needed_) return false;  // nothing new
    retry_needed_ = false;
  }
  {
    std::lock_guard lock(mutex_);
    if (pending_) return false;  // the previous one is still being written
  }
  PendingCheckpoint pending;
  Cut(aggregator, producers, hub, &pending);
  last_cut_ = pending.checkpoint.cut_lsn;
  {
    std::lock_guard lock(mutex_);
    pending_ = std::move(pending);
  }
  cv_.notify_all();
  return true;
}

bool Durability::Persist(PendingCheckpoint& pending) {
  storage::Checkpoint& checkpoint = pending.checkpoint;
  const auto start = std::chrono::steady_clock::now();
  // Off the tick thread: the de-dup table's copy, the blob's assembly, the history.
  pending.owner->CompleteCheckpoint(&pending.aggregator);
  checkpoint.aggregator = std::move(pending.aggregator.blob);
  checkpoint.history = MetricHistory::Serialize(pending.history);
  pending.history = {};
  metrics_.CheckpointSize(checkpoint.aggregator.size() + checkpoint.producers.size() +
                          checkpoint.history.size());
  // The checkpoint counts every record up to its cut: it may be stored only once they are all
  // durable, or a crash could leave it ahead of the log (and their re-sent events would count
  // twice). Bounded wait: a log that cannot write keeps the checkpoint for the next round.
  while (log_->durable_lsn() < checkpoint.cut_lsn) {
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(30)) {
      LogWarn("checkpoint_skipped",
              {{"reason", "the event log is not durable up to the checkpoint's cut"},
               {"cut_lsn", std::to_string(checkpoint.cut_lsn)}});
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string error;
  if (!store_->Save(checkpoint, &error)) {
    metrics_.CheckpointFailed();
    LogWarn("checkpoint_failed", {{"error", error}});
    return false;
  }
  uint64_t keep_from = checkpoint.cut_lsn + 1;
  if (log_floor_) keep_from = std::min(keep_from, log_floor_() + 1);
  log_->TruncateBefore(keep_from);
  metrics_.CheckpointWritten(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
      checkpoint.cut_lsn);
  return true;
}

void Durability::StoreThread() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || pending_.has_value(); });
    if (!pending_) return;  // stopping, nothing left
    PendingCheckpoint& pending = *pending_;
    lock.unlock();
    if (!Persist(pending)) {
      // Not stored: the next round must cut again even if nothing new arrives.
      std::lock_guard retry(retry_mutex_);
      retry_needed_ = true;
    }
    lock.lock();
    pending_.reset();
    cv_.notify_all();
    if (stopping_) return;
  }
}

void Durability::Close(agg::Aggregator& aggregator, ProducerTable& producers,
                       const SnapshotHub& hub) {
  {
    // Let a checkpoint being written finish first.
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return !pending_.has_value(); });
    stopping_ = true;
  }
  cv_.notify_all();
  if (store_thread_.joinable()) store_thread_.join();
  if (cluster_ != nullptr) {
    log_.reset();  // publishes what is left (within its close timeout)
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  if (log_->last_lsn() != last_cut_ || retry_needed_) {
    PendingCheckpoint pending;
    Cut(aggregator, producers, hub, &pending);
    if (Persist(pending)) last_cut_ = pending.checkpoint.cut_lsn;
  }
  LogInfo("checkpoint_at_shutdown", {{"cut_lsn", std::to_string(last_cut_)},
                                     {"ms", Ms(std::chrono::steady_clock::now() - start)}});
  log_.reset();  // writes and syncs what is left
}

}  // namespace rta::server
