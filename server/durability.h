#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "server/aggregator/aggregator.h"
#include "server/aggregator/clock.h"
#include "server/cluster/cluster_node.h"
#include "server/producer_table.h"
#include "server/server_config.h"
#include "server/server_metrics.h"
#include "server/snapshot_hub.h"
#include "server/storage/checkpoint_store.h"
#include "server/storage/event_log.h"

namespace rta::server {

// The server's data directory: the event log (data_dir/log), the checkpoint store
// (data_dir/store), recovery at start and checkpoints while running.
//
// The log is the source of truth and the aggregator a cache of it (see ARCHITECTURE.md): a
// checkpoint is the aggregator's state at a log position (Aggregator::Checkpoint cuts it exactly
// between two ingest sections), and recovery is "load the latest checkpoint, replay the log
// after it". A checkpoint is written to the store only once the log is durable up to its cut,
// and the log before the cut is deleted only once the checkpoint is in the store.
//
// Threads: Open() and Recover() at start, before any call; MaybeCheckpoint() on the tick thread
// (it takes the place of a tick); the store is written on this class's own thread, so that the
// tick never waits for RocksDB; Close() at shutdown, after the workers have stopped.
class Durability {
 public:
  // Locks the directory (a second server on it fails here, naming the holder's lock file),
  // opens the log (truncating a torn tail; a corrupt record in the middle fails unless
  // skip_corrupt_records) and the store.
  // Cluster mode (`cluster` not null): the log is the cluster's ingest log; Recover() makes an
  // empty aggregator with the cluster's hash seeds (the view comes from the partial stream) and
  // no checkpoints are taken. The store still holds users and tokens.
  static std::unique_ptr<Durability> Open(const ServerConfig& config, ServerMetrics& metrics,
                                          cluster::ClusterNode* cluster, std::string* error);
  ~Durability();

  // The RocksDB store (checkpoints, and the users and tokens of server/auth).
  storage::CheckpointStore& store() { return *store_; }

  // Builds the aggregator from the latest checkpoint and the log records after it, and refills
  // the producer table. Logs what it did (records, events, seconds).
  std::unique_ptr<agg::Aggregator> Recover(const agg::Clock& clock, ProducerTable& producers,
                                           SnapshotHub& hub, std::string* error);

  storage::EventLog* log() { return log_.get(); }

  // Before serving: another reader of the log (the history's rollup writer) that must have
  // folded a record before it is deleted. A checkpoint then truncates the log only up to
  // min(its cut, floor()).
  void set_log_floor(std::function<uint64_t()> floor) { log_floor_ = std::move(floor); }

  // Tick thread, in place of Aggregator::Tick(): when a checkpoint is due (interval elapsed,
  // something appended since the last one, the previous one written), cuts one and hands it to
  // the store thread. Returns true when it ticked (the caller publishes aggregator.Latest()).
  bool MaybeCheckpoint(agg::Aggregator& aggregator, ProducerTable& producers,
                       const SnapshotHub& hub);

  // Shutdown, after the workers have stopped (no ingest any more) and the tick thread has
  // ended: a last checkpoint, written synchronously; then the log is closed.
  void Close(agg::Aggregator& aggregator, ProducerTable& producers, const SnapshotHub& hub);

 private:
  Durability(const ServerConfig& config, ServerMetrics& metrics)
      : config_(config), metrics_(metrics) {}
  // A checkpoint cut but not stored yet; its history is serialized by the store thread.
  struct PendingCheckpoint {
    storage::Checkpoint checkpoint;
    agg::CheckpointResult aggregator;  // completed on the store thread
    agg::Aggregator* owner = nullptr;
    MetricHistory::Copy history;
  };
  void Cut(agg::Aggregator& aggregator, ProducerTable& producers, const SnapshotHub& hub,
           PendingCheckpoint* out);
  // Waits until the log is durable up to the checkpoint's cut, stores it, truncates the log.
  bool Persist(PendingCheckpoint& pending);
  void StoreThread();

  const ServerConfig& config_;
  ServerMetrics& metrics_;
  cluster::ClusterNode* cluster_ = nullptr;  // cluster mode
  int lock_fd_ = -1;
  std::unique_ptr<storage::EventLog> log_;
  std::unique_ptr<storage::CheckpointStore> store_;
  std::function<uint64_t()> log_floor_;  // set before serving; read on the store thread
  std::chrono::steady_clock::time_point next_checkpoint_;  // tick thread
  uint64_t last_cut_ = 0;                                   // tick thread

  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<PendingCheckpoint> pending_;  // guarded by mutex_: cut, not yet stored
  bool stopping_ = false;                       // guarded by mutex_
  std::thread store_thread_;
  std::mutex retry_mutex_;
  bool retry_needed_ = false;  // guarded by retry_mutex_: the last checkpoint was not stored
};

}  // namespace rta::server
