#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server/aggregator/clock.h"
#include "server/logged_events.h"
#include "server/storage/event_log.h"
#include "server/storage/rollup_accumulator.h"
#include "server/storage/rollup_event.h"
#include "server/storage/rollup_store.h"

namespace rta::server {

// Counters for Prometheus (monotonic unless said otherwise).
struct RollupWriterStats {
  uint64_t events_folded = 0;
  uint64_t writes = 0;         // batches written to the store
  uint64_t cells_written = 0;  // cell deltas in them
  uint64_t write_failures = 0;
  uint64_t log_reads = 0;      // times the writer read records back from the log
  uint64_t values_folded = 0;  // dimension values counted as __other__ (the cap)
  uint64_t sessions_evicted = 0;
  uint64_t applied_lsn = 0;  // gauge: every record up to here is in the store
};

// The history's writer: folds every accepted event (live and backfilled) into the rollups on
// disk (storage/rollup_store.h, storage/rollup_accumulator.h), on its own thread.
//
// The event log is the source of truth here as it is for the aggregator (ARCHITECTURE.md): the
// writer folds only records that are durable (log.durable_lsn()), in Lsn order, and writes with
// each batch of cells the Lsn they include, in the same RocksDB write. A restart resumes right
// after it (CatchUp), so a record is in the rollups exactly once, and an event that was never
// acknowledged (not durable) is never in them. The log keeps its records until the rollups have
// them too (Durability's log floor reads applied_lsn()).
//
// The ingest path hands each record over as it is appended (Offer: a copy into a bounded queue
// under a short mutex, never a wait). When the queue is full the copy is dropped and the writer
// reads that record back from the log instead, so the queue is a shortcut, never the only copy.
//
// Freshness: cells reach the store every flush interval (and whenever `max_pending_cells` or
// `max_pending_pairs` are pending, which also bounds the writer's memory); a range query sees what
// is written. The live windows cover the present.
//
// Lag: ingest can outrun the writer (it folds about 200,000 events/s on one core). It then
// reads back from the log what it has not folded, however far behind
// (analytics_history_lag_records), and neither a start nor a stop waits for all of that:
// CatchUp reads for at most `start_catch_up_ms` before the port opens and the thread goes on
// from there; Stop reads for at most `stop_catch_up_ms`; the log keeps the rest for the next
// run.
//
// Threads: Open and CatchUp at start, before any ingest; Offer from any thread; Start and Stop
// once each, from one thread; store() and stats() from any thread.
class RollupWriter {
 public:
  struct Options {
    std::string dir;  // the rollup store's RocksDB directory
    storage::RollupRetention retention;
    storage::RollupAccumulator::Limits limits;
    int flush_interval_ms = 2000;
    size_t max_queue_bytes = 64 << 20;
    size_t max_pending_cells = 4096;    // cells with sketches: up to ~16 KiB each
    size_t max_pending_pairs = 65'536;  // pair cells: ~100 bytes each
    int start_catch_up_ms = 5000;
    int stop_catch_up_ms = 2000;
  };

  // `log` and `clock` (the store's retention clock) must outlive the writer.
  static std::unique_ptr<RollupWriter> Open(const Options& options, storage::EventLog& log,
                                            const agg::Clock& clock, std::string* error);
  ~RollupWriter();
  RollupWriter(const RollupWriter&) = delete;
  RollupWriter& operator=(const RollupWriter&) = delete;

  // At start, before any ingest: folds the log records after the stored position (for at most
  // start_catch_up_ms; the thread folds the rest once started) and writes.
  bool CatchUp(std::string* error);
  void Start();
  // Folds and writes what is durable (reading the log for at most stop_catch_up_ms), then
  // joins the thread. Idempotent.
  void Stop();

  // From the ingest path, right after the record got its Lsn. Never waits.
  void Offer(uint64_t lsn, std::string_view record);

  uint64_t applied_lsn() const { return applied_lsn_.load(std::memory_order_acquire); }
  const storage::RollupStore& store() const { return *store_; }
  RollupWriterStats stats() const;

 private:
  struct Queued {
    uint64_t lsn;
    std::string bytes;
  };
  RollupWriter(const Options& options, storage::EventLog& log);
  void Run();
  // Writer thread: folds queued records up to the durable Lsn, reading the log for gaps.
  void Drain();
  // Folds the log's records in [from, to], until `deadline`, and on the writer thread until
  // Stop() is called (`until_stop`). False only on an error.
  bool ReadLog(uint64_t from, uint64_t to, std::chrono::steady_clock::time_point deadline,
               bool until_stop, std::string* error);
  // Folds one record's events into accumulator_ (false: it does not decode or parse).
  bool Fold(uint64_t lsn, std::string_view bytes, std::string* error);
  // Writes when max_pending_cells or max_pending_pairs are pending; false when that write failed.
  bool WriteIfFull();
  // Writes the pending cells, the new applied Lsn (folded_lsn_) and the session table's changes
  // in one batch.
  bool Write();
  // Replaces the accumulator's session table with the stored one (at start, and after a failed
  // write). False, with a message, on a stored session that does not decode.
  bool LoadSessions(std::string* error);

  const Options options_;
  storage::EventLog& log_;
  std::unique_ptr<storage::RollupStore> store_;
  uint64_t visitor_seed_ = 0;
  uint64_t session_seed_ = 0;

  // Writer thread (or CatchUp before it starts).
  storage::RollupAccumulator accumulator_;
  LoggedEventReader reader_;
  storage::IngestRecord record_;
  std::vector<Queued> held_;  // taken from the queue, not folded yet (not durable, or a gap)
  uint64_t folded_lsn_ = 0;   // every record up to here is in accumulator_ or the store
  std::chrono::steady_clock::time_point gap_since_{};
  std::chrono::steady_clock::time_point next_write_{};

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Queued> queue_;  // guarded by mutex_
  size_t queue_bytes_ = 0;     // guarded by mutex_: queue_ and held_ together
  bool overflowed_ = false;    // guarded by mutex_: a record was not queued
  bool stopping_ = false;      // guarded by mutex_
  std::atomic<bool> stop_requested_{false};  // stopping_, for ReadLog's loop without the mutex
  std::thread thread_;

  std::atomic<uint64_t> applied_lsn_{0};
  std::atomic<uint64_t> events_folded_{0}, writes_{0}, cells_written_{0}, write_failures_{0},
      log_reads_{0}, values_folded_{0}, sessions_evicted_{0};
};

}  // namespace rta::server
