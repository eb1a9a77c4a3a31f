#pragma once

#include <cstdint>
#include <string>
#include <string_view>

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
