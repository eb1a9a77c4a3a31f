#include "server/analyze_call.h"

#include <algorithm>

#include "server/ingest_journal.h"

namespace rta::server {
namespace {

session::AnalyzerConfig AnalyzerConfigFor(const ServerConfig& config) {
  session::AnalyzerConfig analyzer;
  analyzer.max_sessions = config.max_sessions_per_analyze_stream;
  return analyzer;
}

// The alarm re-checks at least this often, so results stay on time even when the injected clock
// is moved by hand (tests) rather than by the passage of real time.
constexpr int64_t kMaxTimerDelayMs = 250;

}  // namespace

AnalyzeCall::AnalyzeCall(ServiceState& state, Worker& worker)
    : state_(state),
      worker_(worker),
      analyzer_(
          AnalyzerConfigFor(state.config),
          [&state](agg::SessionSignal signal, int64_t event_time_ms) {
            CountSignal(state, signal, event_time_ms);
            state.metrics.SessionSignal(signal);
          },
          &state.analyze_sessions) {
  context_.AsyncNotifyWhenDone(&done_tag_);
  ++pending_ops_;
  state_.service.RequestAnalyzeSession(&context_, &stream_, worker_.cq(), worker_.cq(),
                                       &request_tag_);
}

void AnalyzeCall::OnEvent(int op, bool ok) {
  --pending_ops_;
  switch (op) {
    case kRequest:
      if (!ok) {  // shutting down before the call started: no done tag will come
        delete this;
        return;
      }
      ++pending_ops_;  // done tag
      if (!state_.shutting_down.load(std::memory_order_relaxed)) new AnalyzeCall(state_, worker_);
      Start();
      break;
    case kRead:
      read_in_flight_ = false;
      if (!ok) {
        reads_closed_ = true;  // the client half-closed: answer what is queued, then finish
        idle_.Cancel();        // it owes us nothing more
      } else if (!finish_called_) {
        idle_.Touch();
        OnRead();
      }
      break;
    case kIdle:
      if (!ok || done_ || finish_called_ || reads_closed_) {
        idle_.OnCancelled();
        break;
      }
      ++pending_ops_;
      if (idle_.ExpiredOrRearm(worker_.cq(), &idle_tag_)) {
        --pending_ops_;  // not re-armed
        state_.metrics.AddIdleStreamClosed(Method::kAnalyzeSession);
        Finish({grpc::StatusCode::DEADLINE_EXCEEDED,
                "no action for " + std::to_string(state_.config.stream_idle_timeout_ms) +
                    " ms (stream_idle_timeout_ms): stream closed"});
      }
      break;
    case kWrite:
      write_in_flight_ = false;
      outbox_.pop_front();
      if (!ok) outbox_.clear();  // the stream is broken; the done tag follows
      if (finish_called_) SendStatus();
      break;
    case kTimer:
      timer_armed_ = false;
      if (!finish_called_ && !done_) CollectDue();
      break;
    case kFinish:
      break;
    case kDone:
      done_ = true;
      if (context_.IsCancelled()) final_code_ = grpc::StatusCode::CANCELLED;
      if (timer_armed_) timer_.Cancel();  // its completion (ok == false) is still pending
      idle_.Cancel();
      booking_.Close(state_, final_code_);
      break;
  }
  if (!done_ && !finish_called_) {
    PumpWrites();
    MaybeRead();
    ArmTimer();
    if (reads_closed_ && outbox_.empty() && !write_in_flight_) Finish(grpc::Status::OK);
  }
  PublishSessionCount();
  if (done_ && pending_ops_ == 0) {
    // The analyzer gives its sessions back to the budget when destroyed; the gauge follows.
    state_.metrics.analyze_sessions().Decrement(static_cast<double>(published_sessions_));
    delete this;
  }
}

void AnalyzeCall::PublishSessionCount() {
  // The gauge is the sum of every call's changes, so it is right however calls interleave.
  const size_t now = analyzer_.session_count();
  if (now == published_sessions_) return;
  state_.metrics.analyze_sessions().Increment(static_cast<double>(now) -
                                              static_cast<double>(published_sessions_));
  published_sessions_ = now;
}

void AnalyzeCall::Start() {
  if (grpc::Status status = booking_.Open(state_, Method::kAnalyzeSession, context_);
      !status.ok()) {
    Finish(status);
    return;
  }
  if (state_.shutting_down.load(std::memory_order_relaxed)) {
    Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
    return;
  }
  ++pending_ops_;
  idle_.Arm(worker_.cq(), &idle_tag_, state_.config.stream_idle_timeout_ms);
}

void AnalyzeCall::OnRead() {
  const int64_t now_ms = state_.clock.NowMs();
  analytics::AnalysisResult result;
  std::string error;
  switch (analyzer_.OnAction(action_, now_ms, &result, &error)) {
    case session::ActionOutcome::kAnswered:
      outbox_.push_back(std::move(result));
      break;
    case session::ActionOutcome::kInvalid:
      // The protocol lets the stream go on: the result names the field, other sessions continue.
      outbox_.push_back(std::move(result));
      if (++invalid_actions_ > state_.config.max_invalid_actions_per_analyze_stream) {
        Finish({grpc::StatusCode::INVALID_ARGUMENT, "too many invalid actions on this stream (" +
                                                        std::to_string(invalid_actions_) +
                                                        "); last: " + outbox_.back().error()});
        return;
      }
      break;
    case session::ActionOutcome::kTooManySessions:
      Finish({grpc::StatusCode::RESOURCE_EXHAUSTED, error});
      return;
    case session::ActionOutcome::kServerSessionBudget:
      state_.metrics.AddAnalyzeSessionRefused();
      Finish({grpc::StatusCode::RESOURCE_EXHAUSTED, error});
      return;
  }
  CollectDue();
}

void AnalyzeCall::CollectDue() {
  due_.clear();
  analyzer_.CollectDue(state_.clock.NowMs(), &due_);
  for (auto& result : due_) outbox_.push_back(std::move(result));
}

void AnalyzeCall::ArmTimer() {
  if (timer_armed_ || reads_closed_) return;
  const std::optional<int64_t> deadline = analyzer_.NextDeadlineMs();
  if (!deadline) return;
  const int64_t delay_ms =
      std::clamp<int64_t>(*deadline - state_.clock.NowMs(), 0, kMaxTimerDelayMs);
  timer_armed_ = true;
  ++pending_ops_;
  timer_.Set(
      worker_.cq(),
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(delay_ms, GPR_TIMESPAN)),
      &timer_tag_);
}

void AnalyzeCall::PumpWrites() {
  if (write_in_flight_ || outbox_.empty()) return;
  write_in_flight_ = true;
  ++pending_ops_;
  stream_.Write(outbox_.front(), &write_tag_);
}

void AnalyzeCall::MaybeRead() {
  if (read_in_flight_ || reads_closed_ || outbox_.size() >= kMaxOutbox) return;
  read_in_flight_ = true;
  ++pending_ops_;
  stream_.Read(&action_, &read_tag_);
}

void AnalyzeCall::Finish(const grpc::Status& status) {
  if (finish_called_) return;
  finish_called_ = true;
  final_code_ = status.error_code();
  final_status_ = status;
  if (timer_armed_) timer_.Cancel();
  idle_.Cancel();
  // Results not yet written are dropped: the status says why the stream ended. The status is
  // sent once the write in flight (if any) completes, never beside it.
  while (outbox_.size() > (write_in_flight_ ? 1 : 0)) outbox_.pop_back();
  if (!write_in_flight_) SendStatus();
}

void AnalyzeCall::SendStatus() {
  ++pending_ops_;
  stream_.Finish(final_status_, &finish_tag_);
}

}  // namespace rta::server
