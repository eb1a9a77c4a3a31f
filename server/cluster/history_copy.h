#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/cluster/nats_session.h"

namespace rta::cluster {

// Copying a peer's history store (docs/design/cluster.md "History: a node that missed records").
//
// Every node's history is built from the partial stream, which keeps two hours of records. A
// node that joins later, or comes back after a longer absence, cannot read what was trimmed; it
// copies a peer's whole store instead (RocksDB checkpoint files: cells, positions and the
// owners' history state, as of one point) and reads the stream on from that store's position.
//
// Over core NATS request-reply (the connection the node already has; no port of its own):
//   rta.history.offer          every node with a store answers: its name, from which stream
//                              sequence its history is whole (`since`) and where it reads on;
//   rta.history.export.<node>  that node's copies: "open" takes a checkpoint and lists its
//                              files, "read" answers a chunk of one, "close" drops it.
// Who can publish on the cluster's NATS can already read every partial (the same cells), so
// these subjects reveal nothing new; they are read-only (a copy never changes the peer's
// store).
//
// Why a file copy and not the cells one by one: the files are compressed (ZSTD) and consistent
// as of one point across the families and the meta keys, and the copying node opens them as
// its store without merging anything.

// What a node offers: its history is whole from stream sequence `since` (every record from it
// on is applied; before it, what the stream held when the node started) and reads on at
// `next_sequence`.
struct HistoryOffer {
  std::string node;
  uint64_t since = 0;
  uint64_t next_sequence = 0;
};

constexpr char kHistoryCopyPrefix[] = "rta.history";
// One read's bytes: under NATS's default max_payload (1 MiB) with room for the reply's framing.
constexpr size_t kHistoryChunkBytes = 512 * 1024;

// Answers offers and copies of this node's store until destroyed. Threading: nats.c's
// subscription threads call the handlers; a thread of its own drops copies idle for
// `idle_limit` (a copier that died), whose checkpoints pin the store's old SST files.
class HistoryExporter {
 public:
  struct Source {
    std::function<HistoryOffer()> offer;
    // A checkpoint of the store in `dir` (which does not exist yet); false and *why.
    std::function<bool(const std::string& dir, std::string* why)> checkpoint;
  };
  // `scratch` is the directory prefix of the checkpoints (<scratch>.export-<n>); leftovers of an
  // earlier run are removed. Null and *error when the subscriptions fail.
  static std::unique_ptr<HistoryExporter> Start(
      NatsSession* session, std::string node, std::string scratch, Source source,
      std::string* error, std::chrono::seconds idle_limit = std::chrono::seconds(60));
  ~HistoryExporter();
  HistoryExporter(const HistoryExporter&) = delete;
  HistoryExporter& operator=(const HistoryExporter&) = delete;

  uint64_t copies_opened() const { return copies_opened_.load(std::memory_order_relaxed); }
  uint64_t bytes_served() const { return bytes_served_.load(std::memory_order_relaxed); }

  // At most this many copies at once (each holds a checkpoint); a further "open" is refused.
  static constexpr size_t kMaxCopies = 2;

 private:
  struct Copy {
    std::string dir;
    std::map<std::string, uint64_t> files;  // name -> size
    std::chrono::steady_clock::time_point used;
  };

  HistoryExporter(NatsSession* session, std::string node, std::string scratch, Source source,
                  std::chrono::seconds idle_limit);
  static void OnOffer(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnExport(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  void Reply(natsMsg* request, const std::string& body);
  std::string Open();
  std::string Read(uint64_t id, const std::string& file, uint64_t offset, uint64_t length);
  void Close(uint64_t id);
  void Sweep(bool all);

  NatsSession* const session_;
  const std::string node_;
  const std::string scratch_;
  const Source source_;
  const std::chrono::seconds idle_limit_;

  std::mutex mu_;
  std::map<uint64_t, Copy> copies_;  // guarded by mu_
  uint64_t next_id_ = 1;             // guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  std::condition_variable wake_;
  std::atomic<uint64_t> copies_opened_{0}, bytes_served_{0};
  std::thread sweeper_;
  // Last: closed first by the destructor, so no handler runs while the rest goes.
  std::unique_ptr<AsyncSubscription> offer_sub_, export_sub_;
};

struct HistoryCopyReport {
  std::string peer;  // "" when none offered a history that has `first_missing`
  uint64_t peer_since = 0;
  uint64_t files = 0, bytes = 0;
  long long ms = 0;  // the copy's, from "open" to the last file synced (not the offers' wait)
};

// Asks every node for its offer (waiting `wait` for answers), picks the one whose history has
// `first_missing` (the first partial-stream record this node can no longer read) and is whole
// from the earliest sequence, and copies its store's files into `into` (created; must not
// exist). True with report->peer "" when nobody offered such a history; false and *why when the
// copy failed (`into` is then removed).
bool CopyPeerHistory(NatsSession* session, const std::string& self, uint64_t first_missing,
                     const std::string& into, std::chrono::milliseconds wait,
                     HistoryCopyReport* report, std::string* why);

}  // namespace rta::cluster
