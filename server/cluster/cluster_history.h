#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/aggregator/clock.h"
#include "server/cluster/nats_session.h"
#include "server/cluster/partial_record.h"
#include "server/storage/rollup_store.h"

namespace rta::cluster {

// A node's history in cluster mode (docs/design/cluster.md "History"): the rollup cells every
// partition owner ships in its partial records (partial_record.h), merged into this node's own
// RocksDB store (storage/rollup_store.h, the single node's format), so that every node answers
// QueryMetrics alone, with the same numbers.
//
// Exactly once: the store keeps, in the same write as the cells, how far each partition's
// rollups are applied (its chain's `rollup_covered`) and the stream sequence to read on from.
// A record's rollups are applied once: a restart reads again from the stored sequence and skips
// what the stored positions already hold. The parts of a flush split over several records are
// held until the last one arrives, and dropped when a new owner's run follows them instead (the
// owner died between parts; the new one folds those events again).
//
// Reads the partial stream itself, with direct gets from the stored sequence (as
// PartialMerger does for the live view, and for the same reasons), so the history never holds
// the live view back and a restart does not read the whole stream again. What the owners have
// trimmed (records older than two hours) cannot be read: a node that was away longer, or a new
// one, misses those records' rollups. Such a skip is logged and counted (gap_records()); a new
// node's history starts with what the stream holds (copy a peer's history directory, taken
// while that peer is stopped, to start with everything).
//
// Threading: one thread of its own; store() and the counters from any thread.
struct ClusterHistoryOptions {
  std::string dir;  // the store's RocksDB directory
  storage::RollupRetention retention;
  std::string stream = "RTA_PARTIALS";
  std::string prefix = "rta.partial";
  // What went wrong and was recovered from (event name and detail), for the server's log.
  std::function<void(const std::string& event, const std::string& detail)> warn;
};

struct ClusterHistoryStats {
  uint64_t records_applied = 0;  // records whose rollups are in the store
  uint64_t writes = 0;           // store batches
  uint64_t cells_written = 0;
  uint64_t write_failures = 0;
  uint64_t malformed = 0;      // records or rollups that did not decode (skipped)
  uint64_t parts_dropped = 0;  // parts of a flush whose owner died before the last
  uint64_t gap_records = 0;    // stream sequences trimmed before this node read them
  uint64_t next_sequence = 0;  // where the reading goes on
};

class ClusterHistory {
 public:
  // Opens the store (creating it) and starts following the stream. `clock` is the retention's
  // and must outlive this. Null and *error when the store does not open.
  static std::unique_ptr<ClusterHistory> Open(NatsSession* session, ClusterHistoryOptions options,
                                              const agg::Clock& clock, std::string* error);
  ~ClusterHistory();
  ClusterHistory(const ClusterHistory&) = delete;
  ClusterHistory& operator=(const ClusterHistory&) = delete;

  const storage::RollupStore& store() const { return *store_; }
  ClusterHistoryStats stats() const;

 private:
  struct Partition {
    uint64_t rollup_covered = 0;  // applied (stored)
    uint64_t run = 0;
    std::vector<std::string> parts;  // held: a flush's parts before its last
    uint64_t first_part_sequence = 0;
  };

  ClusterHistory(NatsSession* session, ClusterHistoryOptions options);
  void Loop();
  // Loads the positions from the store, then reads and applies until stopping (true) or a
  // failure (false, *why; the loop starts again from the stored positions).
  bool Follow(std::string* why);
  bool LoadPositions(std::string* why);
  // Applies one stream message's records in one store write; false when that write failed.
  bool Apply(natsMsg* msg, uint64_t sequence, std::string* why);

  NatsSession* const session_;
  const ClusterHistoryOptions options_;
  std::unique_ptr<storage::RollupStore> store_;

  // The thread's.
  std::map<uint32_t, Partition> partitions_;
  uint64_t next_sequence_ = 1;
  bool fresh_ = true;  // nothing applied yet: where the stream starts is not a gap

  std::mutex mu_;
  bool stopping_ = false;  // guarded by mu_
  std::condition_variable wake_;
  std::atomic<uint64_t> records_applied_{0}, writes_{0}, cells_written_{0}, write_failures_{0},
      malformed_{0}, parts_dropped_{0}, gap_records_{0}, next_sequence_seen_{0};
  std::thread thread_;
};

}  // namespace rta::cluster
