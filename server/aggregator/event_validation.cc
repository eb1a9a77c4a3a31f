#include "server/aggregator/event_validation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace rta::agg {
namespace {

bool Refuse(IngestResult* result, IngestOutcome outcome, std::string_view field,
            std::string reason) {
  result->outcome = outcome;
  result->field = field;
  result->reason = std::move(reason);
  return false;
}

bool AllowedTypeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
         c == '-';
}

std::string Printable(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7f) return std::string("'") + c + "'";
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "0x%02x", byte);
  return buffer;
}

// Whole seconds print as "3700", fractions as "3700.5".
std::string Seconds(int64_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", static_cast<double>(ms) / 1000.0);
  std::string text = buffer;
  while (text.back() == '0') text.pop_back();
  return text;
}

struct TextField {
  std::string_view name;
  const std::string& (analytics::EventData::*get)() const;
};

constexpr TextField kTextFields[] = {
    {"session_id", &analytics::EventData::session_id},
    {"visitor_id", &analytics::EventData::visitor_id},
    {"page", &analytics::EventData::page},
    {"referrer", &analytics::EventData::referrer},
    {"utm_source", &analytics::EventData::utm_source},
    {"utm_campaign", &analytics::EventData::utm_campaign},
    {"country", &analytics::EventData::country},
    {"device", &analytics::EventData::device},
};

}  // namespace

EventKind KindOf(std::string_view type) {
  if (type == "page_view") return EventKind::kPageView;
  if (type == "page_load") return EventKind::kPageLoad;
  if (type == "purchase") return EventKind::kPurchase;
  if (type == "signup") return EventKind::kSignup;
  return EventKind::kOther;
}

bool ValidateEventId(const analytics::EventData& event, IngestResult* result) {
  const size_t size = event.event_id().size();
  if (size == 0) return Refuse(result, IngestOutcome::kInvalid, "event_id", "required");
  if (size > kMaxEventIdBytes) {
    return Refuse(result, IngestOutcome::kInvalid, "event_id",
                  std::to_string(size) + " bytes, limit " + std::to_string(kMaxEventIdBytes));
  }
  return true;
}

bool ValidateEvent(const analytics::EventData& event, int64_t now_ms,
                   const ValidationLimits& limits, int64_t* event_ms, EventKind* kind,
                   IngestResult* result) {
  const std::string& type = event.event_type();
  if (type.empty()) return Refuse(result, IngestOutcome::kInvalid, "event_type", "required");
  if (type.size() > kMaxEventTypeChars) {
    return Refuse(
        result, IngestOutcome::kInvalid, "event_type",
        std::to_string(type.size()) + " characters, limit " + std::to_string(kMaxEventTypeChars));
  }
  for (size_t i = 0; i < type.size(); ++i) {
    if (!AllowedTypeChar(type[i])) {
      return Refuse(result, IngestOutcome::kInvalid, "event_type",
                    "character " + Printable(type[i]) + " at position " + std::to_string(i) +
                        " is not allowed (use a-z 0-9 _ . : -)");
    }
  }
  const double value = event.value();
  if (!std::isfinite(value) || value < 0.0) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%g", value);
    return Refuse(result, IngestOutcome::kInvalid, "value",
                  std::string("must be finite and not negative, got ") + buffer);
  }
  for (const TextField& field : kTextFields) {
    const size_t size = (event.*field.get)().size();
    if (size > kMaxFieldBytes) {
      return Refuse(result, IngestOutcome::kInvalid, field.name,
                    std::to_string(size) + " bytes, limit " + std::to_string(kMaxFieldBytes));
    }
  }
  const int64_t timestamp = event.timestamp_ms();
  if (timestamp < 0) {
    return Refuse(result, IngestOutcome::kInvalid, "timestamp_ms",
                  "must not be negative (0 means now), got " + std::to_string(timestamp));
  }
  const int64_t when = timestamp == 0 ? now_ms : timestamp;
  if (now_ms - when > std::max(limits.max_event_age_ms, limits.max_backfill_age_ms)) {
    if (limits.max_backfill_age_ms > limits.max_event_age_ms) {
      return Refuse(result, IngestOutcome::kTooOld, "timestamp_ms",
                    "event time " + FormatUtc(when) + " is " + Seconds(now_ms - when) +
                        " s old, beyond the history's retention (limit " +
                        Seconds(limits.max_backfill_age_ms) + " s)");
    }
    return Refuse(result, IngestOutcome::kTooOld, "timestamp_ms",
                  "event time " + FormatUtc(when) + " is " + Seconds(now_ms - when) +
                      " s old (limit " + Seconds(limits.max_event_age_ms) + " s)");
  }
  if (when - now_ms > limits.max_event_future_ms) {
    return Refuse(result, IngestOutcome::kInFuture, "timestamp_ms",
                  "event time " + FormatUtc(when) + " is " + Seconds(when - now_ms) +
                      " s in the future (limit " + Seconds(limits.max_event_future_ms) + " s)");
  }
  *event_ms = when;
  *kind = KindOf(type);
  return true;
}

std::string FormatUtc(int64_t unix_ms) {
  // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
  int64_t ms = unix_ms % 1000;
  int64_t seconds = unix_ms / 1000;
  if (ms < 0) {
    ms += 1000;
    --seconds;
  }
  int64_t days = seconds / 86400;
  int64_t second_of_day = seconds % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    --days;
  }
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t day_of_era = days - era * 146097;
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t mp = (5 * day_of_year + 2) / 153;
  const int64_t day = day_of_year - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  char buffer[48];
  const int n = std::snprintf(
      buffer, sizeof buffer, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld",
      static_cast<long long>(year), static_cast<long long>(month), static_cast<long long>(day),
      static_cast<long long>(second_of_day / 3600), static_cast<long long>(second_of_day / 60 % 60),
      static_cast<long long>(second_of_day % 60));
  std::string text(buffer, static_cast<size_t>(n));
  if (ms != 0) {
    std::snprintf(buffer, sizeof buffer, ".%03lld", static_cast<long long>(ms));
    text += buffer;
  }
  text += 'Z';
  return text;
}

}  // namespace rta::agg
