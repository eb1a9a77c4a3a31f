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

MetricHistory::Copy MetricHistory::CopyForCheckpoint() const {
  Copy copy;
  std::lock_guard lock(mutex_);
  for (const Series& series : series_) {
    copy.series_names.push_back(series.name);
    copy.series_windows.push_back(series.window);
    copy.series_metric_ids.push_back(series.metric_id);
  }
  copy.chunks.assign(chunks_.begin(), chunks_.end());
  copy.last_second = last_second_;
  return copy;
}

namespace {

// The history's checkpoint form: little-endian, length-prefixed (u64 counts and lengths).
void PutU64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

bool GetU64(std::string_view* in, uint64_t* value) {
  if (in->size() < 8) return false;
  *value = 0;
  for (int i = 0; i < 8; ++i) {
    *value |= static_cast<uint64_t>(static_cast<unsigned char>((*in)[i])) << (8 * i);
  }
  in->remove_prefix(8);
  return true;
}

bool GetBytes(std::string_view* in, std::string_view* bytes) {
  uint64_t length = 0;
  if (!GetU64(in, &length) || length > in->size()) return false;
  *bytes = in->substr(0, length);
  in->remove_prefix(length);
  return true;
}

constexpr uint64_t kHistoryFormat = 1;

}  // namespace

std::string MetricHistory::Serialize(const Copy& copy) {
  std::string out;
  PutU64(&out, kHistoryFormat);
  PutU64(&out, static_cast<uint64_t>(copy.last_second));
  PutU64(&out, copy.series_names.size());
  for (size_t i = 0; i < copy.series_names.size(); ++i) {
    PutU64(&out, copy.series_names[i].size());
    out.append(copy.series_names[i]);
    PutU64(&out, static_cast<uint64_t>(copy.series_windows[i]));
    PutU64(&out, copy.series_metric_ids[i]);
  }
  PutU64(&out, copy.chunks.size());
  for (const auto& chunk : copy.chunks) {
    PutU64(&out, static_cast<uint64_t>(chunk->second));
    PutU64(&out, chunk->bytes.size());
    out.append(reinterpret_cast<const char*>(chunk->bytes.begin()), chunk->bytes.size());
    PutU64(&out, chunk->ends.size());
    for (uint32_t end : chunk->ends) PutU64(&out, end);
  }
  return out;
}

bool MetricHistory::Restore(std::string_view in, std::string* error) {
  auto damaged = [error](const std::string& what) {
    *error = "history: " + what;
    return false;
  };
  uint64_t format = 0, last = 0, series = 0, chunks = 0;
  if (!GetU64(&in, &format) || format != kHistoryFormat || !GetU64(&in, &last) ||
      !GetU64(&in, &series) || series > 100'000) {
    return damaged("unknown format or damaged header");
  }
  std::vector<Series> restored_series;
  std::unordered_map<std::string, size_t> restored_index;
  for (uint64_t i = 0; i < series; ++i) {
    std::string_view name;
    uint64_t window = 0, metric_id = 0;
    if (!GetBytes(&in, &name) || !GetU64(&in, &window) || !GetU64(&in, &metric_id) ||
        window > analytics::Window_MAX || metric_id > UINT16_MAX) {
      return damaged("series " + std::to_string(i) + " is damaged");
    }
    std::string key(name);
    key.push_back('\0');
    key.push_back(static_cast<char>('0' + window));
    restored_index.emplace(key, restored_series.size());
    restored_series.push_back({std::string(name), static_cast<analytics::Window>(window),
                               static_cast<uint16_t>(metric_id)});
  }
  std::deque<std::shared_ptr<const HistoryChunk>> restored_chunks;
  if (!GetU64(&in, &chunks) || chunks > static_cast<uint64_t>(kMaxSeconds)) {
    return damaged("chunk count is damaged");
  }
  for (uint64_t i = 0; i < chunks; ++i) {
    auto chunk = std::make_shared<HistoryChunk>();
    uint64_t second = 0, ends = 0;
    std::string_view bytes;
    if (!GetU64(&in, &second) || !GetBytes(&in, &bytes) || !GetU64(&in, &ends) ||
        ends > series || ends > in.size() / 8) {
      return damaged("chunk " + std::to_string(i) + " is damaged");
    }
    chunk->second = static_cast<int64_t>(second);
    chunk->bytes = grpc::Slice(bytes.data(), bytes.size());
    chunk->ends.resize(ends);
    uint32_t previous = 0;
    for (uint32_t& end : chunk->ends) {
      uint64_t value = 0;
      GetU64(&in, &value);
      if (value < previous || value > bytes.size()) {
        return damaged("chunk " + std::to_string(i) + " has a bad message offset");
      }
      end = static_cast<uint32_t>(value);
      previous = end;
    }
    restored_chunks.push_back(std::move(chunk));
  }
  if (!in.empty()) return damaged(std::to_string(in.size()) + " bytes left over");
  std::lock_guard lock(mutex_);
  series_ = std::move(restored_series);
  index_ = std::move(restored_index);
  chunks_ = std::move(restored_chunks);
  last_second_ = static_cast<int64_t>(last);
  return true;
}

SnapshotHub::SnapshotHub() {
  auto empty = std::make_shared<PublishedSnapshot>();
  empty->snapshot = std::make_shared<agg::Snapshot>();
  latest_.Set(std::move(empty));
}

std::shared_ptr<PublishedSnapshot> BuildPublishedSnapshot(
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
  published->snapshot = std::move(snapshot);
  return published;
}

std::shared_ptr<const PublishedSnapshot> SnapshotHub::Publish(
    std::shared_ptr<const agg::Snapshot> snapshot, bool early) {
  std::shared_ptr<PublishedSnapshot> published = BuildPublishedSnapshot(std::move(snapshot), early);
  history_.Record(*published->snapshot, published->metric_ids);
  std::shared_ptr<const PublishedSnapshot> result = std::move(published);
  latest_.Set(result);
  return result;
}

}  // namespace rta::server
