#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

#include <cstdint>
#include <ctime>

namespace rta::server {

// Notices that a stream's client has sent nothing for `timeout_ms`. One grpc::Alarm per stream
// fires at most once per timeout period: Touch() on every message only records the time (a
// coarse clock read, no timer operation), and a firing alarm that finds recent activity re-arms
// for the rest of the period. So a busy stream costs one alarm event per period, not one per
// message.
//
// Not thread-safe: used on its call's completion-queue thread. The call owns the pending-
// operation count: Arm() starts one operation (its tag completes once), Cancel() makes a pending
// alarm complete early with ok == false.
class IdleTimer {
 public:
  void Touch() { last_activity_ms_ = NowMs(); }

  void Arm(grpc::CompletionQueue* cq, void* tag, int64_t timeout_ms) {
    timeout_ms_ = timeout_ms;
    Touch();
    SetFor(cq, tag, timeout_ms);
  }
  // On the alarm's completion (ok == true): true when the stream has been idle for the whole
  // timeout; otherwise the alarm is set again for what is left of it.
  bool ExpiredOrRearm(grpc::CompletionQueue* cq, void* tag) {
    armed_ = false;
    const int64_t idle_ms = NowMs() - last_activity_ms_;
    if (idle_ms >= timeout_ms_) return true;
    SetFor(cq, tag, timeout_ms_ - idle_ms);
    return false;
  }
  void OnCancelled() { armed_ = false; }
  void Cancel() {
    if (armed_) alarm_.Cancel();  // its completion (ok == false) is still to come
  }
  bool armed() const { return armed_; }

 private:
  static int64_t NowMs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  }
  void SetFor(grpc::CompletionQueue* cq, void* tag, int64_t delay_ms) {
    armed_ = true;
    alarm_.Set(
        cq,
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(delay_ms, GPR_TIMESPAN)),
        tag);
  }

  grpc::Alarm alarm_;
  bool armed_ = false;
  int64_t timeout_ms_ = 0;
  int64_t last_activity_ms_ = 0;
};

}  // namespace rta::server
