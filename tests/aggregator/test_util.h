#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "analytics.pb.h"
#include "server/aggregator/snapshot.h"

namespace rta::agg::testing {

// 2026-11-25T10:00:00Z: a whole minute, so minute buckets line up with the test's arithmetic.
inline constexpr int64_t kStartMs = 1'795'600'800'000;

// Concatenates text and integers. (GCC 12 warns falsely, -Wrestrict, on "literal" + std::string.)
inline void AppendPart(std::string& out, std::string_view part) { out.append(part); }
inline void AppendPart(std::string& out, int64_t number) { out.append(std::to_string(number)); }
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  (AppendPart(out, parts), ...);
  return out;
}

inline analytics::EventData Event(std::string id, std::string type, int64_t timestamp_ms = 0,
                                  std::string visitor = "", std::string session = "") {
  analytics::EventData event;
  event.set_event_id(std::move(id));
  event.set_event_type(std::move(type));
  event.set_timestamp_ms(timestamp_ms);
  event.set_visitor_id(std::move(visitor));
  event.set_session_id(std::move(session));
  return event;
}

// A varied, reproducible stream: many visitors (3000) and sessions (800), 150 pages, 40
// referrers, 30 campaigns, 12 countries, page loads, purchases (revenue in quarters, so that
// sums are exact in any order), times spread over the last 58 minutes and up to 30 s ahead
// (all within the default age and future limits).
class EventMix {
 public:
  explicit EventMix(uint64_t seed, std::string prefix) : rng_(seed), prefix_(std::move(prefix)) {}

  analytics::EventData Next(int64_t now_ms) {
    static const std::array<const char*, 8> kTypes = {"page_view", "page_view",  "page_view",
                                                      "click",     "page_load",  "purchase",
                                                      "signup",    "add_to_cart"};
    static const std::array<const char*, 4> kDevices = {"desktop", "mobile", "tablet", ""};
    analytics::EventData e;
    e.set_event_id(Cat(prefix_, "-", static_cast<int64_t>(next_++)));
    e.set_event_type(kTypes[rng_() % kTypes.size()]);
    if (rng_() % 10 != 0) e.set_visitor_id(Cat("v", static_cast<int64_t>(rng_() % 3000)));
    if (rng_() % 8 != 0) e.set_session_id(Cat("s", static_cast<int64_t>(rng_() % 800)));
    e.set_page(Cat("/p/", static_cast<int64_t>(rng_() % 150)));
    if (rng_() % 2 == 0) e.set_referrer(Cat("ref", static_cast<int64_t>(rng_() % 40), ".com"));
    if (rng_() % 4 == 0) e.set_utm_campaign(Cat("c", static_cast<int64_t>(rng_() % 30)));
    if (rng_() % 6 != 0) e.set_country(Cat("C", static_cast<int64_t>(rng_() % 12)));
    e.set_device(kDevices[rng_() % kDevices.size()]);
    if (e.event_type() == "purchase") e.set_value(static_cast<double>(rng_() % 4000) / 4.0);
    if (e.event_type() == "page_load") e.set_value(std::exp(5.0 + (rng_() % 3000) / 1000.0));
    switch (rng_() % 10) {
      case 0:
      case 1:  // up to 58 minutes old
        e.set_timestamp_ms(now_ms - static_cast<int64_t>(rng_() % 3'480'000));
        break;
      case 2:  // a few seconds ahead
        e.set_timestamp_ms(now_ms + static_cast<int64_t>(rng_() % 30'000));
        break;
      case 3:  // no time: now
        break;
      default:  // the last two minutes
        e.set_timestamp_ms(now_ms - static_cast<int64_t>(rng_() % 120'000));
    }
    return e;
  }

 private:
  std::mt19937_64 rng_;
  std::string prefix_;
  uint64_t next_ = 0;
};

// The series of a snapshot, or nullptr.
inline const MetricPoint* FindPoint(const Snapshot& snapshot, std::string_view name,
                                    analytics::Window window, std::string_view label_value = "") {
  for (const MetricPoint& point : snapshot.points) {
    if (point.name == name && point.window == window && point.label_value == label_value) {
      return &point;
    }
  }
  return nullptr;
}

// The value of a series; -1 when the series does not exist (no metric is ever negative).
inline double Value(const Snapshot& snapshot, std::string_view name, analytics::Window window,
                    std::string_view label_value = "") {
  const MetricPoint* point = FindPoint(snapshot, name, window, label_value);
  return point == nullptr ? -1.0 : point->value;
}

}  // namespace rta::agg::testing
