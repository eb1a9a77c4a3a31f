#pragma once

#include <atomic>
#include <cstdint>

namespace rta::session {

// The server-wide number of sessions all AnalyzeSession streams may track together: each
// stream's SessionAnalyzer takes one unit per session it starts and gives it back when the
// session expires or the analyzer is destroyed, so the total is bounded however many streams
// a client opens (the per-stream limit alone bounds nothing when streams are cheap to open).
//
// Thread-safe and lock-free: analyzers on different completion-queue threads share one budget.
// Must outlive every analyzer that uses it.
class SessionBudget {
 public:
  explicit SessionBudget(uint64_t limit) : limit_(limit) {}
  SessionBudget(const SessionBudget&) = delete;
  SessionBudget& operator=(const SessionBudget&) = delete;

  // One more session, unless `limit` are already in use (then counted as refused).
  bool TryAcquire() {
    uint64_t used = in_use_.load(std::memory_order_relaxed);
    do {
      if (used >= limit_) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    } while (!in_use_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
    return true;
  }

  void Release(uint64_t count) { in_use_.fetch_sub(count, std::memory_order_relaxed); }

  uint64_t limit() const { return limit_; }
  uint64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> in_use_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace rta::session
