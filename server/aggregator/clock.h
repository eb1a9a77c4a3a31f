#pragma once

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

// Wall-clock time (system_clock).
class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
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
