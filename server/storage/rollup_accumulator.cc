#include "server/storage/rollup_accumulator.h"

#include <algorithm>

namespace rta::storage {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

int RollupDimensionIndex(std::string_view name) {
  for (size_t d = 0; d < kRollupDimensionCount; ++d) {
    if (kRollupDimensions[d] == name) return static_cast<int>(d);
  }
  return -1;
}

std::string SegmentKey(size_t dimension, std::string_view value) {
  std::string key(kRollupDimensions[dimension]);
  key.push_back('=');
  key.append(value);
  return key;
}

void RollupAccumulator::Admit(size_t dimension, std::string_view value) {
  admitted_[dimension].emplace(value);
}

std::string_view RollupAccumulator::Capped(size_t d, std::string_view value) {
  if (value.empty()) return kRollupNoneValue;
  std::unordered_set<std::string>& admitted = admitted_[d];
  // A heterogeneous find would avoid this copy; std::unordered_set<std::string> has none in
  // C++20 without a transparent hasher, and the writer's thread has time to spare.
  const std::string text(value);
  if (admitted.count(text) != 0) return value;
  if (value == kRollupOtherValue || admitted.size() >= limits_.max_values_per_dimension) {
    ++values_folded_;
    return kRollupOtherValue;
  }
  admitted.insert(text);
  new_values_.emplace_back(d, text);
  return value;
}

RollupCell& RollupAccumulator::Cell(Resolution resolution, int64_t time_s,
                                    std::string_view segment) {
  const int64_t bucket = BucketStart(resolution, time_s);
  key_.clear();
  key_.push_back(static_cast<char>(resolution));
  key_.append(reinterpret_cast<const char*>(&bucket), sizeof bucket);
  key_.append(segment);
  auto [it, inserted] = cells_.try_emplace(key_);
  if (inserted) {
    it->second.resolution = resolution;
    it->second.bucket_s = bucket;
    it->second.segment.assign(segment);
  }
  return it->second.cell;
}

template <typename Fn>
void RollupAccumulator::ForEachCell(int64_t time_ms,
                                    const std::array<std::string, kRollupDimensionCount>& segments,
                                    Fn&& fn) {
  const int64_t time_s = FloorDiv(time_ms, 1000);
  fn(Cell(Resolution::kMinute, time_s, ""));
  for (Resolution resolution : {Resolution::kHour, Resolution::kDay}) {
    fn(Cell(resolution, time_s, ""));
    for (const std::string& segment : segments) fn(Cell(resolution, time_s, segment));
  }
}

void RollupAccumulator::Add(const RollupEvent& event) {
  // The session first: its acquisition (referrer, utm_source, utm_campaign) is the session's,
  // as analysts read "conversions by campaign", when the event itself names none.
  Session* session = nullptr;
  bool new_session = false;
  if (event.session_hash != 0) {
    ++folds_;
    newest_ingest_ms_ = std::max(newest_ingest_ms_, event.ingest_ms);
    if (newest_ingest_ms_ >= next_expiry_ms_) ExpireSessions(newest_ingest_ms_);
    auto found = sessions_.find(event.session_hash);
    if (found == sessions_.end()) {
      if (sessions_.size() >= limits_.max_sessions) EvictSessions();
      found = sessions_.try_emplace(event.session_hash).first;
      new_session = true;
    } else if (event.event_ms - found->second.last_ms > limits_.session_timeout_ms) {
      found->second = Session();  // the same id after a long pause: a new visit
      new_session = true;
    }
    session = &found->second;
    if (new_session) session->first_ms = session->last_ms = event.event_ms;
    session->last_seen = folds_;
    session->last_ingest_ms = std::max(session->last_ingest_ms, event.ingest_ms);
  }
  std::array<std::string, kRollupDimensionCount> segments;
  for (size_t d = 0; d < kRollupDimensionCount; ++d) {
    if (session != nullptr && !new_session && event.dimensions[d].empty() &&
        kRollupSessionScoped[d]) {
      segments[d] = session->segments[d];
    } else {
      segments[d] = SegmentKey(d, Capped(d, event.dimensions[d]));
    }
  }
  RollupCounters delta;
  delta.events = 1;
  delta.page_views = event.kind == RollupEvent::Kind::kPageView;
  delta.conversions =
      event.kind == RollupEvent::Kind::kPurchase || event.kind == RollupEvent::Kind::kSignup;
  if (event.kind == RollupEvent::Kind::kPurchase) delta.revenue_units = RevenueUnits(event.value);
  const bool page_load = event.kind == RollupEvent::Kind::kPageLoad;
  ForEachCell(event.event_ms, segments, [&](RollupCell& cell) {
    cell.counters.Add(delta);
    if (event.visitor_hash != 0) cell.AddVisitor(event.visitor_hash);
    if (page_load) cell.AddPageLoad(event.value);
  });
  if (session == nullptr) return;
  if (new_session) {
    session->segments = segments;
    ForEachCell(event.event_ms, segments, [](RollupCell& cell) { cell.counters.sessions += 1; });
  }
  session->last_ms = std::max(session->last_ms, event.event_ms);
  if (event.kind != RollupEvent::Kind::kPageView) return;
  ++session->page_views;
  if (session->page_views == 1) {
    ForEachCell(session->first_ms, session->segments,
                [](RollupCell& cell) { cell.counters.bounces += 1; });
  } else if (session->page_views == 2) {
    // Modulo 2^64: the cell's deltas still sum to the number of single-page sessions.
    ForEachCell(session->first_ms, session->segments,
                [](RollupCell& cell) { cell.counters.bounces -= 1; });
  }
}

void RollupAccumulator::ExpireSessions(int64_t now_ingest_ms) {
  const int64_t oldest = now_ingest_ms - limits_.session_timeout_ms;
  std::erase_if(sessions_,
                [oldest](const auto& entry) { return entry.second.last_ingest_ms < oldest; });
  next_expiry_ms_ = now_ingest_ms + 60'000;
}

void RollupAccumulator::EvictSessions() {
  const uint64_t keep_from = folds_ - std::min<uint64_t>(folds_, limits_.max_sessions / 2);
  sessions_evicted_ += std::erase_if(
      sessions_, [keep_from](const auto& entry) { return entry.second.last_seen < keep_from; });
}

std::vector<RollupWrite> RollupAccumulator::TakeWrites() {
  std::vector<RollupWrite> writes;
  writes.reserve(cells_.size());
  for (auto& [key, pending] : cells_) {
    writes.push_back({pending.resolution, pending.bucket_s, std::move(pending.segment),
                      std::move(pending.cell)});
  }
  cells_.clear();
  return writes;
}

}  // namespace rta::storage
