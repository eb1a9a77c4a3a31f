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

// Per-second values of every scalar series (no top-k lists, no dimension series) for the last
// hour, so that a dashboard can fill its sparklines the moment it joins. Thread-safe: the tick
// thread records, worker threads read at subscription start (a mutex, off the ingest path).
class MetricHistory {
 public:
  static constexpr int64_t kMaxSeconds = 3600;
  void Record(const agg::Snapshot& snapshot, const std::vector<uint16_t>& metric_ids);
  // Appends one HISTORY update per stored second within the last `seconds` before the latest
  // recorded second, for every series the filter matches, oldest first.
  void Collect(const MetricFilter& filter, uint32_t seconds, uint64_t epoch,
               std::vector<analytics::MetricUpdate>* out) const;

 private:
  struct Series {
    std::string name;
    analytics::Window window;
    uint16_t metric_id;
    std::deque<std::pair<int64_t, double>> points;  // (unix second, value), oldest first
  };
  mutable std::mutex mutex_;
  std::vector<Series> series_;                     // guarded by mutex_
  std::unordered_map<std::string, size_t> index_;  // guarded by mutex_
  int64_t last_second_ = 0;                        // guarded by mutex_
};

// Holds the latest published snapshot. Publish() runs on the tick thread; Latest() anywhere.
class SnapshotHub {
 public:
  SnapshotHub();
  std::shared_ptr<const PublishedSnapshot> Publish(std::shared_ptr<const agg::Snapshot> snapshot,
                                                   bool early = false);
  std::shared_ptr<const PublishedSnapshot> Latest() const { return latest_.Get(); }
  const MetricHistory& history() const { return history_; }

 private:
  agg::LatestValue<PublishedSnapshot> latest_{nullptr};
  MetricHistory history_;
};

}  // namespace rta::server
