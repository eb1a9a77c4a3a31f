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
#include "server/cluster/history_copy.h"
#include "server/cluster/nats_session.h"
#include "server/cluster/partial_record.h"
#include "server/cluster/partial_tap.h"
#include "server/storage/rollup_accumulator.h"
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
// Reads the partial stream from the stored sequence, with direct gets (as PartialMerger does for
// the live view, and for the same reasons), so the history never holds the live view back and a
// restart does not read the whole stream again; once at the merger's position it takes the
// messages the merger read (partial_tap.h) instead of reading each one a second time. What the
// owners have trimmed (records older than two hours) cannot be read. So a node that finds at start
// that the stream no longer holds a record after its store's position (a new node, once the stream
// has been trimmed; a node away longer than two hours) copies a peer's whole store instead
// (history_copy.h: the peer whose history is whole from the earliest sequence) and reads on
// from that store's position. Every node serves such copies. Without a peer to copy from, the
// node reads what the stream holds: the skip is logged and counted (gap_records()).
//
// The owners' history state: a flush also carries the owner's session changes and newly
// admitted values (storage/rollup_delta.h), which the store keeps per partition in the same
// write as the cells and the position. A node that takes a partition over restores its owner's
// accumulator from them (RestorePartition) as of the chain's rollup_covered, so a session that
// spans the takeover counts once, keeps its acquisition and takes back its bounce, and the
// partition's admitted values stay admitted. A partition's sessions are those touched within the
// session timeout (30 minutes of ingest time), so the two hours of records the stream keeps hold
// every session a next owner needs, even for a new node.
//
// Threading: one thread of its own; store(), RestorePartition() and the counters from any
// thread.
struct ClusterHistoryOptions {
  std::string dir;  // the store's RocksDB directory
  storage::RollupRetention retention;
  std::string stream = "RTA_PARTIALS";
  std::string prefix = "rta.partial";
  // This node's name: whose copies it serves (history_copy.h), and whose offer it ignores. Empty:
  // no copies, either way.
  std::string node;
  // How long to gather the peers' offers before a copy.
  std::chrono::milliseconds offer_wait{1000};
  // The messages the node's PartialMerger read (partial_tap.h), taken instead of reading the
  // stream a second time when they are the ones this history reads next; must outlive it.
  // Null: every message is read here.
  PartialTap* tap = nullptr;
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
  uint64_t since = 0;          // the history is whole from this stream sequence (0: nothing yet)
  // At start: a peer's store copied (it replaced this node's), or a copy that failed.
  uint64_t copies = 0, copy_failures = 0, copy_bytes = 0;
  uint64_t exports = 0, export_bytes = 0;  // copies of this store served to other nodes
  // Stream messages this history took from the merger's reads, and read itself.
  uint64_t shared_reads = 0, own_reads = 0;
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

  enum class Restore {
    kRestored,  // *accumulator holds the partition's values and sessions as of rollup_covered
    kBehind,    // this store has not applied that far yet (try again shortly)
    kPast,      // this store has applied further: the chain moved on (a newer owner)
    kFailed,    // the store could not be read (*error)
  };
  // Admits the partition's values into `accumulator` and restores its sessions, if this store has
  // applied the partition's rollups up to exactly `rollup_covered` (a partition never flushed,
  // rollup_covered 0, restores nothing). *sessions: how many were restored; a stored session
  // that does not decode is skipped and counted in *bad. Blocks this node's history writes
  // meanwhile (a scan of the partition's sessions).
  Restore RestorePartition(uint32_t partition, uint64_t rollup_covered,
                           storage::RollupAccumulator* accumulator, size_t* sessions, size_t* bad,
                           std::string* error);

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
  // At start: when the stream no longer holds the records after this store's position, copies
  // a peer's store over it (see the class comment). False only when the store could not be
  // opened again afterwards (*why).
  bool CopyFromPeerIfBehind(const agg::Clock& clock, std::string* why);
  bool FindTrimmed(uint64_t from, uint64_t* first_missing, std::string* why);
  // Applies one stream message's records in one store write; false when that write failed.
  bool Apply(natsMsg* msg, uint64_t sequence, std::string* why);

  NatsSession* const session_;
  const ClusterHistoryOptions options_;
  std::unique_ptr<storage::RollupStore> store_;

  // The thread's.
  std::map<uint32_t, Partition> partitions_;
  uint64_t next_sequence_ = 1;
  bool fresh_ = true;  // nothing applied yet: where the stream starts is not a gap
  uint64_t since_ = 0;        // whole from this sequence (stored; 0 while fresh)
  bool since_dirty_ = false;  // since_ moved: store it with the next write

  // Held across each store write and its positions' update, and by RestorePartition, which
  // must read a partition's state as of one position.
  std::mutex store_mu_;
  std::map<uint32_t, uint64_t> stored_covered_;  // guarded by store_mu_: rollup_covered stored

  std::mutex mu_;
  bool stopping_ = false;  // guarded by mu_
  std::condition_variable wake_;
  std::atomic<uint64_t> records_applied_{0}, writes_{0}, cells_written_{0}, write_failures_{0},
      malformed_{0}, parts_dropped_{0}, gap_records_{0}, next_sequence_seen_{0}, since_seen_{0},
      copies_{0}, copy_failures_{0}, copy_bytes_{0}, shared_reads_{0}, own_reads_{0};
  std::unique_ptr<HistoryExporter> exporter_;  // after store_: stopped before it closes
  std::thread thread_;
};

}  // namespace rta::cluster
