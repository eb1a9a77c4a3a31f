#include "server/query_metrics_call.h"

#include "server/history_query.h"

namespace rta::server {

RangeQueryRunner::RangeQueryRunner(size_t max_waiting)
    : max_waiting_(max_waiting), thread_([this] { Run(); }) {}

RangeQueryRunner::~RangeQueryRunner() { Stop(); }

bool RangeQueryRunner::Submit(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || jobs_.size() >= max_waiting_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void RangeQueryRunner::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void RangeQueryRunner::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything queued has run
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

QueryMetricsCall::QueryMetricsCall(ServiceState& state, Worker& worker)
    : state_(state), worker_(worker) {
  state_.service.RequestQueryMetrics(&context_, &query_, &responder_, worker_.cq(), worker_.cq(),
                                     &request_tag_);
}

void QueryMetricsCall::Finish(const grpc::Status& status) {
  code_ = status.error_code();
  if (status.ok()) {
    responder_.Finish(result_, status, &finish_tag_);
  } else {
    responder_.FinishWithError(status, &finish_tag_);
  }
}

void QueryMetricsCall::OnEvent(int op, bool ok) {
  switch (op) {
    case kRequest: {
      if (!ok) {  // shutting down before a call arrived
        delete this;
        return;
      }
      if (!state_.shutting_down.load(std::memory_order_relaxed)) {
        new QueryMetricsCall(state_, worker_);
      }
      start_time_ = std::chrono::steady_clock::now();
      auth::Principal principal;
      if (grpc::Status status = state_.Authenticate(context_, Method::kQueryMetrics, &principal);
          !status.ok()) {
        Finish(status);
        return;
      }
      if (state_.history == nullptr || state_.range_queries == nullptr) {
        Finish({grpc::StatusCode::FAILED_PRECONDITION,
                "this server keeps no history: it runs in memory only (--data-dir \"\")"});
        return;
      }
      const bool queued = state_.range_queries->Submit([this] {
        std::lock_guard lock(answer_mutex_);
        status_ = AnswerRangeQuery(query_, *state_.history, state_.clock.NowMs(), &result_);
        // Back to the call's own thread.
        answered_alarm_.Set(worker_.cq(), gpr_now(GPR_CLOCK_MONOTONIC), &answered_tag_);
      });
      if (!queued) {
        Finish({grpc::StatusCode::RESOURCE_EXHAUSTED,
                "too many range queries are waiting; retry in a moment"});
      }
      return;
    }
    case kAnswered: {
      std::lock_guard lock(answer_mutex_);
    }  // see answer_mutex_
      Finish(status_);
      return;
    case kFinish:
      state_.metrics.RpcHandled(
          Method::kQueryMetrics, ok ? code_ : grpc::StatusCode::CANCELLED,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count());
      delete this;
      return;
  }
}

}  // namespace rta::server
