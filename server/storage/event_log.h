#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rta::storage {

// A record's position: 1 for the first record ever written in this log directory, +1 per
// record, never reused (survives restarts and truncation). A record lost to a torn tail leaves
// its number unused only if a later segment file already carried a higher one.
using Lsn = uint64_t;

enum class FsyncMode {
  kAlways,    // fdatasync after every write(2), before reporting durable (group commit)
  kInterval,  // fdatasync every interval_ms; durable only after that sync
  kNever,     // durable once write(2) is done (survives a process crash, not a power loss)
};

struct LogOptions {
  std::string dir;  // created if missing
  FsyncMode fsync = FsyncMode::kAlways;
  int interval_ms = 10;                       // kInterval only
  uint64_t segment_bytes = 64 << 20;          // rotate to a new segment file after this size
  uint64_t max_pending_bytes = 256 << 20;     // appended, not yet written: Append refuses beyond
  bool skip_corrupt = false;  // at Open: skip (and count) corrupt records in the middle
  // Additions to the brief's shape: the retry period after a write error (the brief's 1 s; tests
  // keep it), and how long the destructor keeps trying to write and sync what is pending.
  int retry_interval_ms = 1000;
  int close_timeout_ms = 5000;
};

struct LogHealth {
  bool writable = true;
  // Why not, e.g. "write to /d/00000000000000000003.log failed: No space left on device;
  // retrying every 1000 ms". Empty when writable.
  std::string message;
};

struct OpenReport {
  uint64_t torn_tail_bytes_truncated = 0;
  uint64_t corrupt_records_skipped = 0;  // with skip_corrupt (by the Lsn gap, at least 1)
  std::vector<std::string> messages;     // one line per truncation or skipped region
  Lsn first_lsn = 0;  // first record kept on disk (last_lsn + 1 when there is none)
  Lsn last_lsn = 0;   // highest Lsn assigned so far (0 for a new log)
};

// Counters for Prometheus (monotonic unless said otherwise).
struct LogStats {
  uint64_t records_appended = 0;
  uint64_t bytes_appended = 0;  // payload bytes given to Append
  uint64_t appends_refused = 0;
  uint64_t bytes_written = 0;   // framed bytes written to segment files
  uint64_t writes = 0;          // write batches (one per group commit)
  uint64_t syncs = 0;
  uint64_t sync_nanos_sum = 0;
  uint64_t write_errors = 0;
  uint64_t pending_bytes = 0;  // gauge: appended, not yet written
  uint64_t segments = 0;       // gauge: segment files in the directory
};

// The log that every accepted ingest batch goes to before it is acknowledged. An interface so
// that a distributed log (NATS JetStream, later) can take the local segment log's place.
// All methods are thread-safe.
class EventLog {
 public:
  virtual ~EventLog() = default;

  // Never waits for the disk (copies the record into a bounded pending buffer under a short
  // mutex). Returns true and the record's Lsn, or false and *why when the log does not accept
  // writes now: not writable after a write error, pending bytes over max_pending_bytes, record
  // too large, or closing. A record that was given an Lsn is never dropped while the process
  // lives: after a write error it is kept and retried until a write succeeds.
  virtual bool Append(std::string_view record, Lsn* lsn, std::string* why) = 0;

  // For a record whose contents the caller has already counted (it checked health() just
  // before): never refused for health or the pending bound (which it may exceed by one record
  // per appending thread), only when the log is closing or the record is over the size limit;
  // then 0. Otherwise as Append.
  virtual Lsn AppendAdmitted(std::string_view record) = 0;

  virtual Lsn durable_lsn() const = 0;  // every record <= this is durable per the fsync mode
  virtual Lsn last_lsn() const = 0;     // last assigned

  // Calls done(true) on the log's writer thread once durable_lsn() >= lsn (at once, on the
  // caller's thread, if already); done(false) if the log is closed first. Callbacks fire in Lsn
  // order. done must be quick and must not call back into the log.
  virtual void WhenDurable(Lsn lsn, std::function<void(bool)> done) = 0;

  // Reads every written record with lsn >= from, in order (used at start, before any Append).
  // visit returns false to stop. False and *why on an I/O error or a corrupt record.
  virtual bool ReadFrom(Lsn from, const std::function<bool(Lsn, std::string_view)>& visit,
                        std::string* why) = 0;

  // Deletes every segment whose records are all < lsn (a checkpoint covers them). Cheap: file
  // deletion only; the segment being written is never deleted.
  virtual void TruncateBefore(Lsn lsn) = 0;

  virtual LogHealth health() const = 0;
  virtual LogStats stats() const = 0;
};

}  // namespace rta::storage
