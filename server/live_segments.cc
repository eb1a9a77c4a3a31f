#include "server/live_segments.h"

#include <algorithm>
#include <chrono>

namespace rta::server {
namespace {

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::shared_ptr<const PublishedSnapshot> EmptyPublished() {
  auto empty = std::make_shared<PublishedSnapshot>();
  empty->snapshot = std::make_shared<agg::Snapshot>();
  return empty;
}

}  // namespace

class LiveSegments::Segment {
 public:
  Segment(std::string key_in, std::vector<agg::SegmentCondition> conditions_in)
      : key(std::move(key_in)), conditions(std::move(conditions_in)) {}

  const std::string key;
  const std::vector<agg::SegmentCondition> conditions;
  agg::LatestValue<PublishedSnapshot> latest{EmptyPublished()};
  // Guarded by LiveSegments::mutex_.
  uint32_t watchers = 0;
  int64_t idle_since_ms = 0;
  bool dropped = false;  // left the table: close at the next tick
  // Tick thread only.
  int id = -1;
  uint64_t published_sequence = 0;
};

LiveSegments::Watch::Watch(LiveSegments& owner, std::shared_ptr<Segment> segment)
    : owner_(owner), segment_(std::move(segment)) {}

LiveSegments::Watch::~Watch() { owner_.Release(*segment_); }

std::shared_ptr<const PublishedSnapshot> LiveSegments::Watch::Latest() const {
  return segment_->latest.Get();
}

LiveSegments::LiveSegments(Options options) : options_(options) {}
LiveSegments::~LiveSegments() = default;

std::unique_ptr<LiveSegments::Watch> LiveSegments::Start(
    std::vector<agg::SegmentCondition> conditions, std::string* error) {
  std::string key = agg::SegmentKeyOf(&conditions);
  const int64_t now_ms = SteadyNowMs();
  std::lock_guard lock(mutex_);
  auto found = segments_.find(key);
  if (found == segments_.end()) {
    if (options_.max_segments == 0) {
      ++refused_;
      *error = "filters: live segments are off on this server (--max-live-segments 0)";
      return nullptr;
    }
    if (segments_.size() >= options_.max_segments) {
      // Make room by giving up the segment idle the longest, if any.
      auto idle = segments_.end();
      for (auto it = segments_.begin(); it != segments_.end(); ++it) {
        if (it->second->watchers == 0 &&
            (idle == segments_.end() || it->second->idle_since_ms < idle->second->idle_since_ms)) {
          idle = it;
        }
      }
      if (idle == segments_.end()) {
        ++refused_;
        *error = "filters: the server keeps at most " + std::to_string(options_.max_segments) +
                 " live segments (--max-live-segments) and every one is watched; watch one of "
                 "them or retry later";
        return nullptr;
      }
      idle->second->dropped = true;
      segments_.erase(idle);
    }
    auto segment = std::make_shared<Segment>(key, std::move(conditions));
    found = segments_.emplace(std::move(key), std::move(segment)).first;
    ++opened_;
  }
  ++found->second->watchers;
  found->second->idle_since_ms = now_ms;
  return std::make_unique<Watch>(*this, found->second);
}

void LiveSegments::Release(Segment& segment) {
  const int64_t now_ms = SteadyNowMs();
  std::lock_guard lock(mutex_);
  if (--segment.watchers == 0) segment.idle_since_ms = now_ms;
}

void LiveSegments::BeforeTick(agg::Aggregator& aggregator) {
  const int64_t now_ms = SteadyNowMs();
  std::vector<std::shared_ptr<Segment>> to_open;
  {
    std::lock_guard lock(mutex_);
    for (auto it = segments_.begin(); it != segments_.end();) {
      Segment& segment = *it->second;
      if (segment.watchers == 0 && now_ms - segment.idle_since_ms >= options_.idle_ms) {
        segment.dropped = true;
        it = segments_.erase(it);
        continue;
      }
      if (segment.id < 0) to_open.push_back(it->second);
      ++it;
    }
  }
  // Close what left the table (the tick thread alone reads and writes `id`; `dropped` only
  // goes from false to true, under the mutex, which this read takes again).
  for (auto it = open_.begin(); it != open_.end();) {
    bool dropped = false;
    {
      std::lock_guard lock(mutex_);
      dropped = (*it)->dropped;
    }
    if (dropped) {
      aggregator.CloseSegment((*it)->id);
      it = open_.erase(it);
      ++open_version_;
    } else {
      ++it;
    }
  }
  for (std::shared_ptr<Segment>& segment : to_open) {
    segment->id = aggregator.OpenSegment(segment->conditions);
    // Never -1: at most max_segments are kept, at most as many are closing, and the aggregator
    // has twice that. Should it happen, the segment is tried again at the next tick.
    if (segment->id >= 0) {
      open_.push_back(std::move(segment));
      ++open_version_;
    }
  }
}

void LiveSegments::AfterTick(const agg::Aggregator& aggregator, bool early) {
  for (const std::shared_ptr<Segment>& segment : open_) {
    std::shared_ptr<const agg::Snapshot> snapshot = aggregator.SegmentLatest(segment->id);
    if (snapshot == nullptr || snapshot->sequence == segment->published_sequence) continue;
    segment->published_sequence = snapshot->sequence;
    segment->latest.Set(BuildPublishedSnapshot(std::move(snapshot), early));
  }
}

int LiveSegments::IdOf(std::string_view key) const {
  for (const std::shared_ptr<Segment>& segment : open_) {
    if (segment->key == key) return segment->id;
  }
  return -1;
}

std::vector<std::string> LiveSegments::OpenKeys() const {
  std::vector<std::string> keys;
  keys.reserve(open_.size());
  for (const std::shared_ptr<Segment>& segment : open_) keys.push_back(segment->key);
  return keys;
}

size_t LiveSegments::size() const {
  std::lock_guard lock(mutex_);
  return segments_.size();
}

uint64_t LiveSegments::refused() const {
  std::lock_guard lock(mutex_);
  return refused_;
}

uint64_t LiveSegments::opened() const {
  std::lock_guard lock(mutex_);
  return opened_;
}

grpc::Status AdmitSubscriber(ServiceState& state, std::vector<agg::SegmentCondition> conditions,
                             std::unique_ptr<LiveSegments::Watch>* segment) {
  if (state.subscribers.fetch_add(1, std::memory_order_relaxed) >= state.config.max_subscribers) {
    state.subscribers.fetch_sub(1, std::memory_order_relaxed);
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, "server has reached max_subscribers (" +
                                                      std::to_string(state.config.max_subscribers) +
                                                      "); retry later"};
  }
  if (conditions.empty()) return grpc::Status::OK;
  std::string refusal = "filters: live segments are not available here";
  if (state.live_segments != nullptr) {
    *segment = state.live_segments->Start(std::move(conditions), &refusal);
  }
  if (*segment == nullptr) {
    state.subscribers.fetch_sub(1, std::memory_order_relaxed);
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, refusal};
  }
  return grpc::Status::OK;
}

}  // namespace rta::server
