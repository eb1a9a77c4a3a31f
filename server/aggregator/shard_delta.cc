#include "server/aggregator/shard_delta.h"

#include <bit>

namespace rta::agg::detail {

void DeltaBucket::Clear() {
  counters = BucketCounters{};
  if (has_visitors) visitors->Clear();
  has_visitors = false;
  if (page_loads) page_loads->Clear();
  for (auto& map : ranked) {
    const size_t size = map.size();
    map.Clear();
    map.ShrinkIfSparse(size);
  }
  for (auto& map : dimensions) {
    const size_t size = map.size();
    map.Clear();
    map.ShrinkIfSparse(size);
  }
}

DeltaBucket& ShardDelta::BucketFor(TimeKey key) {
  if (last_ != nullptr && last_->key == key) return *last_;
  for (size_t i = 0; i < used_; ++i) {
    if (buckets_[i]->key == key) {
      last_ = buckets_[i].get();
      return *last_;
    }
  }
  last_ = &AppendBucket(key);
  return *last_;
}

void ShardDelta::AddKey(FlatMap<KeyCount>& map, const KeyRef& key) {
  auto [count, inserted] = map.FindOrInsert(key.hash);
  if (inserted) {
    count->offset = static_cast<uint32_t>(arena_.size());
    count->length = static_cast<uint32_t>(key.text.size());
    arena_.append(key.text);
  }
  ++count->count;
}

void ShardDelta::Apply(const EventRecord& event, TimeKey key) {
  touched_ = true;
  DeltaBucket& bucket = BucketFor(key);
  BucketCounters& counters = bucket.counters;
  ++counters.events;
  switch (event.kind) {
    case EventKind::kPageView:
      ++counters.page_views;
      break;
    case EventKind::kPurchase:
      ++counters.conversions;
      counters.revenue += event.value;
      break;
    case EventKind::kSignup:
      ++counters.conversions;
      break;
    case EventKind::kPageLoad:
      if (!bucket.page_loads) bucket.page_loads = std::make_unique<QuantileSketch>();
      bucket.page_loads->Add(event.value);
      break;
    case EventKind::kOther:
      break;
  }
  if (event.visitor_hash != 0) {
    if (!bucket.visitors) bucket.visitors = std::make_unique<HyperLogLog>();
    bucket.visitors->Add(event.visitor_hash);
    bucket.has_visitors = true;
  }
  for (size_t i = 0; i < kRankedCount; ++i) {
    if (event.ranked[i].hash == 0) continue;
    ++counters.ranked_totals[i];
    AddKey(bucket.ranked[i], event.ranked[i]);
  }
  for (size_t i = 0; i < kDimensionCount; ++i) AddKey(bucket.dimensions[i], event.dimensions[i]);

  if (event.session_hash != 0) {
    auto [session, inserted] = sessions_.FindOrInsert(event.session_hash);
    if (inserted) {
      session->first_ms = session->last_ms = event.event_ms;
    } else {
      if (event.event_ms < session->first_ms) session->first_ms = event.event_ms;
      if (event.event_ms > session->last_ms) session->last_ms = event.event_ms;
    }
    session->page_views += event.kind == EventKind::kPageView ? 1 : 0;
    session->conversions +=
        (event.kind == EventKind::kPurchase || event.kind == EventKind::kSignup) ? 1 : 0;
  }

  IngestCount& slot = ingest_counts_[static_cast<size_t>(event.ingest_second) % kIngestSeconds];
  if (slot.second != event.ingest_second) {
    // A slot still holding a later second means the clock stepped back: count nothing rather
    // than corrupt it. An older second is only there when no tick ran for 16 s.
    if (slot.count != 0 && slot.second > event.ingest_second) return;
    slot = IngestCount{event.ingest_second, 0};
  }
  ++slot.count;
}

void ShardDelta::AddSignal(size_t signal, TimeKey key) {
  touched_ = true;
  ++BucketFor(key).counters.signals[signal];
}

ShardDelta& ShardDelta::Segment(size_t id) {
  if (segments_[id] == nullptr) segments_[id] = std::make_unique<ShardDelta>();
  touched_segments_ |= uint64_t{1} << id;
  return *segments_[id];
}

void ShardDelta::ClearSegments() {
  for (uint64_t bits = touched_segments_; bits != 0; bits &= bits - 1) {
    segments_[static_cast<size_t>(std::countr_zero(bits))]->Clear();
  }
  touched_segments_ = 0;
}

DeltaBucket& ShardDelta::AppendBucket(TimeKey key) {
  touched_ = true;
  if (used_ == buckets_.size()) buckets_.push_back(std::make_unique<DeltaBucket>());
  DeltaBucket& bucket = *buckets_[used_++];
  bucket.key = key;
  return bucket;
}

bool ShardDelta::AddKeyCount(FlatMap<KeyCount>& map, uint64_t hash, std::string_view text,
                             uint64_t count) {
  auto [entry, inserted] = map.FindOrInsert(hash);
  if (!inserted) return false;
  *entry =
      KeyCount{count, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(text.size())};
  arena_.append(text);
  return true;
}

bool ShardDelta::AddSession(uint64_t hash, const SessionDelta& session) {
  auto [entry, inserted] = sessions_.FindOrInsert(hash);
  if (!inserted) return false;
  *entry = session;
  touched_ = true;
  return true;
}

void ShardDelta::Clear() {
  ClearSegments();
  for (size_t i = 0; i < used_; ++i) buckets_[i]->Clear();
  if (buckets_.size() > kRetainedBuckets) buckets_.resize(kRetainedBuckets);
  used_ = 0;
  last_ = nullptr;
  const size_t sessions = sessions_.size();
  sessions_.Clear();
  sessions_.ShrinkIfSparse(sessions);
  const size_t arena_used = arena_.size();
  arena_.clear();
  if (arena_.capacity() > (size_t{1} << 20) && arena_used * 8 < arena_.capacity()) {
    arena_.shrink_to_fit();
    arena_.reserve(arena_used * 2);
  }
  ingest_counts_.fill(IngestCount{});
  touched_ = false;
}

}  // namespace rta::agg::detail
