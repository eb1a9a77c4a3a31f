#include "server/snapshot_hub.h"

#include <grpc/slice.h>

#include <algorithm>
#include <cstring>

namespace rta::server {

void FillMetricUpdate(const agg::Snapshot& snapshot, const agg::MetricPoint& point,
                      analytics::UpdateKind kind, analytics::MetricUpdate* out) {
  out->set_metric_type(point.name);
  out->set_value(point.value);
  out->set_timestamp(snapshot.time_ms / 1000);
  out->set_timestamp_ms(snapshot.time_ms);
  out->set_window(point.window);
  if (!point.label_key.empty()) (*out->mutable_labels())[point.label_key] = point.label_value;
  out->set_sequence(snapshot.sequence);
  out->set_epoch(snapshot.epoch);
  out->set_kind(kind);
  for (const agg::TopItem& item : point.top) {
    analytics::TopEntry* entry = out->add_top();
    entry->set_key(item.key);
    entry->set_count(item.count);
    entry->set_error(item.error);
    entry->set_share(item.share);
  }
}

SerializedUpdate SerializeUpdate(const analytics::MetricUpdate& update) {
  grpc_slice raw = grpc_slice_malloc(update.ByteSizeLong());  // caches the sizes used below
  update.SerializeWithCachedSizesToArray(GRPC_SLICE_START_PTR(raw));
  grpc::Slice bytes(raw, grpc::Slice::STEAL_REF);
  return {grpc::ByteBuffer(&bytes, 1), std::move(bytes)};
}

void MetricHistory::Record(const agg::Snapshot& snapshot, const std::vector<uint16_t>& metric_ids) {
  const int64_t second = snapshot.time_ms / 1000;
  std::lock_guard lock(mutex_);
  if (second <= last_second_) return;  // one point per second
  last_second_ = second;
  auto chunk = std::make_shared<HistoryChunk>();
  chunk->second = second;
  // (series index, serialized message) for this second, then laid out by series index.
  std::vector<std::pair<size_t, std::string>> messages;
  analytics::MetricUpdate update;
  update.set_timestamp(second);
  update.set_timestamp_ms(second * 1000);
  update.set_epoch(snapshot.epoch);
  update.set_kind(analytics::UPDATE_KIND_HISTORY);
  std::string key;
  size_t total = 0;
  for (size_t i = 0; i < snapshot.points.size(); ++i) {
    const agg::MetricPoint& point = snapshot.points[i];
    if (!point.label_key.empty() || !point.top.empty() || point.name.rfind("top_", 0) == 0) {
      continue;
    }
    key.assign(point.name).push_back('\0');
    key.push_back(static_cast<char>('0' + point.window));
    auto [it, inserted] = index_.try_emplace(key, series_.size());
    if (inserted) series_.push_back({point.name, point.window, metric_ids[i]});
    update.set_metric_type(point.name);
    update.set_window(point.window);
    update.set_value(point.value);
    messages.emplace_back(it->second, update.SerializeAsString());
    total += messages.back().second.size();
  }
  std::stable_sort(messages.begin(), messages.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  chunk->ends.assign(messages.empty() ? 0 : messages.back().first + 1, 0);
  grpc_slice raw = grpc_slice_malloc(total);
  uint8_t* out = GRPC_SLICE_START_PTR(raw);
  uint32_t offset = 0;
  size_t next = 0;  // series indices without a point this second get an empty range
  for (const auto& [index, bytes] : messages) {
    if (index < next) continue;  // a series twice in one snapshot: the first one counts
    for (; next < index; ++next) chunk->ends[next] = offset;
    std::memcpy(out + offset, bytes.data(), bytes.size());
    offset += static_cast<uint32_t>(bytes.size());
    chunk->ends[next++] = offset;
  }
  chunk->bytes = grpc::Slice(raw, grpc::Slice::STEAL_REF);
  chunks_.push_back(std::move(chunk));
  // A joiner still walking a dropped chunk keeps it alive until it is done with it.
  while (!chunks_.empty() && chunks_.front()->second <= second - kMaxSeconds) chunks_.pop_front();
}

HistoryView MetricHistory::View(const MetricFilter& filter, uint32_t seconds) const {
  HistoryView view;
  std::lock_guard lock(mutex_);
  const int64_t oldest = last_second_ - static_cast<int64_t>(seconds);
  auto first = std::partition_point(chunks_.begin(), chunks_.end(),
                                    [&](const auto& chunk) { return chunk->second <= oldest; });
  view.chunks.assign(first, chunks_.end());
  for (size_t i = 0; i < series_.size(); ++i) {
    if (filter.Matches(series_[i].metric_id, series_[i].window)) {
      view.series.push_back(static_cast<uint32_t>(i));
    }
  }
  return view;
}

SnapshotHub::SnapshotHub() {
  auto empty = std::make_shared<PublishedSnapshot>();
  empty->snapshot = std::make_shared<agg::Snapshot>();
  latest_.Set(std::move(empty));
}

std::shared_ptr<const PublishedSnapshot> SnapshotHub::Publish(
    std::shared_ptr<const agg::Snapshot> snapshot, bool early) {
  auto published = std::make_shared<PublishedSnapshot>();
  published->early = early;
  const size_t n = snapshot->points.size();
  published->metric_ids.reserve(n);
  published->delta_messages.reserve(n);
  published->snapshot_messages.reserve(n);
  analytics::MetricUpdate update;
  for (size_t i = 0; i < n; ++i) {
    const agg::MetricPoint& point = snapshot->points[i];
    const int id = MetricId(point.name);
    published->metric_ids.push_back(static_cast<uint16_t>(id < 0 ? 0xffff : id));
    update.Clear();
    FillMetricUpdate(*snapshot, point, analytics::UPDATE_KIND_DELTA, &update);
    published->delta_messages.push_back(SerializeUpdate(update));
    update.set_kind(analytics::UPDATE_KIND_SNAPSHOT);
    published->snapshot_messages.push_back(SerializeUpdate(update));
    if (point.changed_sequence == snapshot->sequence) {
      published->changed_now.push_back(static_cast<uint32_t>(i));
    }
  }
  history_.Record(*snapshot, published->metric_ids);
  published->snapshot = std::move(snapshot);
  std::shared_ptr<const PublishedSnapshot> result = published;
  latest_.Set(result);
  return result;
}

}  // namespace rta::server
