#pragma once

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace rta::agg {

// Source of "now" for everything that depends on time (windows, late/future checks, dedupe
// horizon, session expiry). Injected so that tests control time exactly.
// Implementations must be thread-safe: NowMs() is called from every ingest thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // Unix time in milliseconds.
  virtual int64_t NowMs() const = 0;
};

// Wall-clock time from CLOCK_REALTIME_COARSE: the time of the kernel's last timer tick (1-4 ms
// resolution), read without the clock-source arithmetic of CLOCK_REALTIME. Ingest reads the
// clock once per event, where the precise clock was about a tenth of the aggregator's cost;
// everything the aggregator does with the time is per second or coarser, and the session
// analyzer's rules (a second for rage clicks, minutes for idle sessions) do not notice a few ms
// (its timer may wake a few ms early and re-arm).
class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    timespec now{};
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
  }
};

// A clock that only moves when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(std::memory_order_relaxed); }
  void SetMs(int64_t ms) { now_ms_.store(ms, std::memory_order_relaxed); }
  void AdvanceMs(int64_t delta) { now_ms_.fetch_add(delta, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace rta::agg
