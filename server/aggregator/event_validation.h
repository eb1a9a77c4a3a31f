#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "analytics.pb.h"
#include "server/aggregator/aggregator.h"

namespace rta::agg {

// What an event counts as, decided once from event_type.
enum class EventKind : uint8_t {
  kOther,     // click, add_to_cart, any custom type: events_total only
  kPageView,  // page_views, top_pages/referrers/campaigns, bounce rate
  kPurchase,  // conversions and revenue
  kSignup,    // conversions
  kPageLoad,  // page_load_ms quantiles
};

// What an event_type counts as.
EventKind KindOf(std::string_view type);

struct ValidationLimits {
  int64_t max_event_age_ms = 3'600'000;
  int64_t max_event_future_ms = 60'000;
  // Older than max_event_age_ms but within this: valid (a backfill, which the caller tells
  // apart by the age). 0: no backfill.
  int64_t max_backfill_age_ms = 0;
};

inline constexpr size_t kMaxEventIdBytes = 128;
inline constexpr size_t kMaxEventTypeChars = 64;
inline constexpr size_t kMaxFieldBytes = 2048;

// Checks event_id (required, 1..128 bytes). On failure fills `result` (kInvalid, field, reason).
bool ValidateEventId(const analytics::EventData& event, IngestResult* result);

// Checks everything but event_id against the limits at clock time `now_ms`. On success sets
// `*event_ms` (timestamp_ms, or now_ms when it is 0) and `*kind`, and leaves `result` untouched
// (no allocation); on failure fills `result` with the outcome, the field and a human reason such
// as "event time 2026-11-25T10:00:00Z is 3700 s old (limit 3600 s)".
bool ValidateEvent(const analytics::EventData& event, int64_t now_ms,
                   const ValidationLimits& limits, int64_t* event_ms, EventKind* kind,
                   IngestResult* result);

// "2026-11-25T10:00:00Z", with ".250" before the Z when the milliseconds are not zero.
std::string FormatUtc(int64_t unix_ms);

}  // namespace rta::agg
