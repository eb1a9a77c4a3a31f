#include "server/snapshot_hub.h"

#include <grpc/slice.h>

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
  std::string key;
  for (size_t i = 0; i < snapshot.points.size(); ++i) {
    const agg::MetricPoint& point = snapshot.points[i];
    if (!point.label_key.empty() || !point.top.empty() || point.name.rfind("top_", 0) == 0) {
      continue;
    }
    key.assign(point.name).push_back('\0');
    key.push_back(static_cast<char>('0' + point.window));
    auto [it, inserted] = index_.try_emplace(key, series_.size());
    if (inserted) series_.push_back({point.name, point.window, metric_ids[i], {}});
    auto& points = series_[it->second].points;
    points.emplace_back(second, point.value);
    while (!points.empty() && points.front().first <= second - kMaxSeconds) points.pop_front();
  }
}

void MetricHistory::Collect(const MetricFilter& filter, uint32_t seconds, uint64_t epoch,
                            std::vector<analytics::MetricUpdate>* out) const {
  std::lock_guard lock(mutex_);
  const int64_t oldest = last_second_ - static_cast<int64_t>(seconds);
  for (const Series& series : series_) {
    if (!filter.Matches(series.metric_id, series.window)) continue;
    for (const auto& [second, value] : series.points) {
      if (second <= oldest) continue;
      analytics::MetricUpdate& update = out->emplace_back();
      update.set_metric_type(series.name);
      update.set_window(series.window);
      update.set_value(value);
      update.set_timestamp(second);
      update.set_timestamp_ms(second * 1000);
      update.set_epoch(epoch);
      update.set_kind(analytics::UPDATE_KIND_HISTORY);
    }
  }
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
