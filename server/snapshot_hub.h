#pragma once

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "analytics.pb.h"
#include "server/aggregator/latest_value.h"
#include "server/aggregator/snapshot.h"
#include "server/metric_filter.h"

namespace rta::server {

// Fills *out with one series of a snapshot.
void FillMetricUpdate(const agg::Snapshot& snapshot, const agg::MetricPoint& point,
                      analytics::UpdateKind kind, analytics::MetricUpdate* out);

// One MetricUpdate serialized once, in one slice: `buffer` is what a SubscribeMetrics write
// sends, `bytes` (the same memory) what a MetricUpdateBatch message is assembled from.
struct SerializedUpdate {
  grpc::ByteBuffer buffer;
  grpc::Slice bytes;
};
SerializedUpdate SerializeUpdate(const analytics::MetricUpdate& update);

// A snapshot made ready for fan-out: every series serialized once, shared by every subscriber,
// which refers to these messages while it writes them instead of copying them. Immutable.
struct PublishedSnapshot {
  std::shared_ptr<const agg::Snapshot> snapshot;
  std::vector<uint16_t> metric_ids;                 // per point
  std::vector<SerializedUpdate> delta_messages;     // per point, kind DELTA
  std::vector<SerializedUpdate> snapshot_messages;  // per point, kind SNAPSHOT
  std::vector<uint32_t> changed_now;  // points whose changed_sequence is this sequence
  bool early = false;  // published ahead of the tick schedule for push_on_change subscribers

  uint64_t sequence() const { return snapshot->sequence; }
  uint64_t epoch() const { return snapshot->epoch; }
};

// Serializes every series of a snapshot once, for fan-out (SnapshotHub::Publish without the
// history; live segments publish theirs with it).
std::shared_ptr<PublishedSnapshot> BuildPublishedSnapshot(
    std::shared_ptr<const agg::Snapshot> snapshot, bool early);

// One second of history: the UPDATE_KIND_HISTORY message of every series recorded that second,
// serialized once, back to back in one slice. Immutable once recorded; shared (by reference
// count) by the history and by every subscriber that is still sending it on join.
struct HistoryChunk {
  int64_t second = 0;
  grpc::Slice bytes;
  // Per series index (MetricHistory's numbering): the end of its message in `bytes`; it starts
  // where the previous series' ends. An empty range: no point for that series this second.
  // Series that appeared after this second are beyond the end of the vector.
  std::vector<uint32_t> ends;

  // The message of series `index` as [*begin, *end) in `bytes`; false if it has none here.
  bool Find(size_t index, uint32_t* begin, uint32_t* end) const {
    if (index >= ends.size()) return false;
    *begin = index == 0 ? 0 : ends[index - 1];
    *end = ends[index];
    return *end > *begin;
  }
};

// What a subscriber joining with history walks: the chunks of the seconds it asked for and the
// series its filter matches. It refers to the shared chunks (8-16 bytes per second, at most
// 3600 seconds) and copies none of them; the chunks stay alive until it lets go of the view,
// even if the history drops them meanwhile, so what it sends is what was there when it joined.
struct HistoryView {
  std::vector<std::shared_ptr<const HistoryChunk>> chunks;  // oldest first
  std::vector<uint32_t> series;                             // matching series, in series order
};

// Per-second values of every scalar series (no top-k lists, no dimension series) for the last
// hour, so that a dashboard can fill its sparklines the moment it joins. Each second is kept as
// one HistoryChunk of already-serialized HISTORY updates, so that joining costs a subscriber a
// few pointers instead of a copy of the history (before 2026-12-02 every joiner built and
// serialized its own: ~400 bytes per point, 1.7-2.0 MiB per joiner after one minute).
// The chunks cost about 50 bytes per series per second (~14 MiB for an hour of ~70 series).
// Thread-safe: the tick thread records, worker threads take views at subscription start (a
// mutex held for the recording of one second or the copy of the chunk pointers, off the ingest
// path).
class MetricHistory {
 public:
  static constexpr int64_t kMaxSeconds = 3600;
  // Records the snapshot's second (the first snapshot of each second wins). `epoch` goes into
  // every message; it is the aggregator's, constant for the life of the process.
  void Record(const agg::Snapshot& snapshot, const std::vector<uint16_t>& metric_ids);
  // The stored seconds within the last `seconds` before the latest recorded second and the
  // series the filter matches. Sending, for each series in order, its messages in chunk order,
  // oldest first, is the history a subscriber gets.
  HistoryView View(const MetricFilter& filter, uint32_t seconds) const;

  // For checkpoints: the history as it is now (the chunk pointers, shared, not copied; cheap
  // enough for the tick thread), and its serialized form (made from that copy off the tick
  // thread). Restore() (at start, before any view) replaces the history with a serialized one;
  // false with `error` on damage. The messages carry the aggregator's epoch, which a restored
  // aggregator keeps, so they are stored as they were sent.
  struct Copy {
    std::vector<std::string> series_names;
    std::vector<analytics::Window> series_windows;
    std::vector<uint16_t> series_metric_ids;
    std::vector<std::shared_ptr<const HistoryChunk>> chunks;
    int64_t last_second = 0;
  };
  Copy CopyForCheckpoint() const;
  static std::string Serialize(const Copy& copy);
  bool Restore(std::string_view bytes, std::string* error);

 private:
  struct Series {
    std::string name;
    analytics::Window window;
    uint16_t metric_id;
  };
  mutable std::mutex mutex_;
  std::vector<Series> series_;                              // guarded by mutex_
  std::unordered_map<std::string, size_t> index_;           // guarded by mutex_
  std::deque<std::shared_ptr<const HistoryChunk>> chunks_;  // guarded by mutex_; oldest first
  int64_t last_second_ = 0;                                 // guarded by mutex_
};

// Holds the latest published snapshot. Publish() runs on the tick thread; Latest() anywhere.
class SnapshotHub {
 public:
  SnapshotHub();
  std::shared_ptr<const PublishedSnapshot> Publish(std::shared_ptr<const agg::Snapshot> snapshot,
                                                   bool early = false);
  std::shared_ptr<const PublishedSnapshot> Latest() const { return latest_.Get(); }
  const MetricHistory& history() const { return history_; }
  MetricHistory& mutable_history() { return history_; }  // restore at start

 private:
  agg::LatestValue<PublishedSnapshot> latest_{nullptr};
  MetricHistory history_;
};

}  // namespace rta::server
