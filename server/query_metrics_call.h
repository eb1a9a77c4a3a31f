#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/async_unary_call.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "server/service_state.h"
#include "server/worker.h"

namespace rta::server {

// The thread range queries run on: they read RocksDB, which a completion-queue thread must
// never wait for (ARCHITECTURE.md). A bounded queue of jobs, run in order; Submit() refuses
// beyond `max_waiting` (the call answers RESOURCE_EXHAUSTED). Stop() runs what is queued, then
// joins: a call waiting for its answer keeps its completion queue alive, so every job must run.
// Thread-safe.
class RangeQueryRunner {
 public:
  explicit RangeQueryRunner(size_t max_waiting);
  ~RangeQueryRunner();
  bool Submit(std::function<void()> job);
  void Stop();

 private:
  void Run();

  const size_t max_waiting_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  std::thread thread_;
};

// State machine of one unary QueryMetrics call: authenticated on the completion-queue thread,
// answered on the range-query thread (history_query.h), finished back on the completion-queue
// thread through an alarm.
class QueryMetricsCall final : public CallBase {
 public:
  QueryMetricsCall(ServiceState& state, Worker& worker);
  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kRequest, kAnswered, kFinish };
  void Finish(const grpc::Status& status);

  ServiceState& state_;
  Worker& worker_;
  LiveCall live_call_{worker_};
  grpc::ServerContext context_;
  analytics::RangeQuery query_;
  grpc::ServerAsyncResponseWriter<analytics::RangeResult> responder_{&context_};
  Tag request_tag_{this, kRequest};
  Tag answered_tag_{this, kAnswered};
  Tag finish_tag_{this, kFinish};
  grpc::Alarm answered_alarm_;
  // Written on the range-query thread, which then sets the alarm; read on the call's thread
  // once the alarm fires. gRPC orders the two, in code ThreadSanitizer does not see, so the
  // range-query thread does all of it (the alarm's Set included) under answer_mutex_, and the
  // call's thread takes the mutex once before it reads: then everything the range-query thread
  // did, up to its last access of this object, visibly comes before the call goes on (and
  // deletes itself).
  std::mutex answer_mutex_;
  analytics::RangeResult result_;
  grpc::Status status_;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  std::chrono::steady_clock::time_point start_time_;
};

}  // namespace rta::server
