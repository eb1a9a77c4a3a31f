#pragma once

#include <cstdint>

namespace rta::agg::detail {

// Window layout: per-second buckets for the last kSecondSpan seconds (serve 1m and 5m),
// per-minute buckets for the last kMinuteSpan minutes (serve 1h), and a since-start total.
inline constexpr int64_t kSecondSpan = 300;
inline constexpr int64_t kMinuteSpan = 60;
inline constexpr int64_t kOneMinuteWindowSeconds = 60;

inline constexpr int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Which bucket of the windows an event time falls into, as seen at ingest: its second while that
// second is still within the per-second span, else its minute while that is within the
// per-minute span, else only the since-start total. Keying old events by minute bounds the number
// of distinct buckets a delta can hold during one tick (at most about 300 + 60 + 1 plus the
// future allowance), whatever times a backfill sends.
class TimeKey {
 public:
  enum class Granularity : uint8_t { kSecond = 0, kMinute = 1, kTotalOnly = 2 };

  static TimeKey Second(int64_t second) { return TimeKey(second * 4); }
  static TimeKey Minute(int64_t minute) { return TimeKey(minute * 4 + 1); }
  static TimeKey TotalOnly() { return TimeKey(2); }

  static TimeKey For(int64_t event_ms, int64_t now_ms) {
    const int64_t event_second = FloorDiv(event_ms, 1000);
    const int64_t now_second = FloorDiv(now_ms, 1000);
    if (event_second > now_second - kSecondSpan) return Second(event_second);
    const int64_t event_minute = FloorDiv(event_second, 60);
    if (event_minute > FloorDiv(now_second, 60) - kMinuteSpan) return Minute(event_minute);
    return TotalOnly();
  }

  TimeKey() = default;
  Granularity granularity() const { return static_cast<Granularity>(code_ & 3); }
  // The second or minute (0 for kTotalOnly).
  int64_t unit() const { return FloorDiv(code_, 4); }
  int64_t code() const { return code_; }
  bool operator==(const TimeKey&) const = default;

 private:
  explicit TimeKey(int64_t code) : code_(code) {}
  int64_t code_ = 2;
};

}  // namespace rta::agg::detail
