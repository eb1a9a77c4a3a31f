#include "bench/micro/mutex_baseline.h"

#include <string_view>

#include "server/aggregator/hash.h"

namespace rta::bench {

struct MutexAggregator::Bucket {
  uint64_t events = 0;
  uint64_t page_views = 0;
  uint64_t conversions = 0;
  double revenue = 0.0;
  agg::HyperLogLog visitors;
  agg::QuantileSketch page_loads;
  std::unordered_map<std::string, uint64_t> pages;
  std::unordered_map<std::string, uint64_t> referrers;
  std::unordered_map<std::string, uint64_t> campaigns;
  std::unordered_map<std::string, uint64_t> countries;
  std::unordered_map<std::string, uint64_t> devices;
};

MutexAggregator::MutexAggregator(const agg::Clock& clock) : clock_(clock) {
  seen_.reserve(size_t{1} << 22);
}

MutexAggregator::~MutexAggregator() = default;

agg::IngestOutcome MutexAggregator::Ingest(const analytics::EventData& event) {
  agg::IngestResult result;
  if (!agg::ValidateEventId(event, &result)) return result.outcome;
  const int64_t now_ms = clock_.NowMs();
  int64_t event_ms = 0;
  agg::EventKind kind = agg::EventKind::kOther;
  if (!agg::ValidateEvent(event, now_ms, agg::ValidationLimits{}, &event_ms, &kind, &result)) {
    return result.outcome;
  }
  const int64_t now_second = now_ms / 1000;
  const int64_t event_second = event_ms / 1000;

  std::lock_guard lock(mutex_);
  if (seen_.size() >= (size_t{1} << 22)) seen_.clear();  // bounded memory, crudely
  auto [seen, inserted] = seen_.try_emplace(
      agg::detail::HashBytes(event.event_id(), agg::detail::kSeedEventId), now_second);
  if (!inserted) {
    if (now_second - seen->second <= 600) return agg::IngestOutcome::kDuplicate;
    seen->second = now_second;
  }
  std::unique_ptr<Bucket>& slot = seconds_[event_second];
  if (!slot) {
    slot = std::make_unique<Bucket>();
    std::erase_if(seconds_, [&](const auto& entry) { return entry.first < now_second - 3600; });
  }
  Bucket& bucket = *slot;
  ++bucket.events;
  switch (kind) {
    case agg::EventKind::kPageView:
      ++bucket.page_views;
      if (!event.page().empty()) ++bucket.pages[event.page()];
      if (!event.referrer().empty()) ++bucket.referrers[event.referrer()];
      if (!event.utm_campaign().empty()) ++bucket.campaigns[event.utm_campaign()];
      break;
    case agg::EventKind::kPurchase:
      ++bucket.conversions;
      bucket.revenue += event.value();
      break;
    case agg::EventKind::kSignup:
      ++bucket.conversions;
      break;
    case agg::EventKind::kPageLoad:
      bucket.page_loads.Add(event.value());
      break;
    case agg::EventKind::kOther:
      break;
  }
  if (!event.visitor_id().empty()) {
    bucket.visitors.Add(agg::detail::HashBytes(event.visitor_id(), agg::detail::kSeedVisitor));
  }
  ++bucket.countries[event.country().empty() ? std::string("unknown") : event.country()];
  ++bucket.devices[event.device().empty() ? std::string("unknown") : event.device()];
  if (!event.session_id().empty()) {
    auto [session, is_new] = sessions_.try_emplace(event.session_id());
    if (is_new) session->second.first_ms = event_ms;
    session->second.first_ms = std::min(session->second.first_ms, event_ms);
    session->second.last_ms = std::max(session->second.last_ms, event_ms);
    session->second.page_views += kind == agg::EventKind::kPageView ? 1 : 0;
  }
  return agg::IngestOutcome::kAccepted;
}

}  // namespace rta::bench
