#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>

#include <chrono>
#include <cstdint>
#include <deque>

#include "server/idle_timer.h"
#include "server/service_state.h"
#include "server/session/session_analyzer.h"
#include "server/worker.h"

namespace rta::server {

// State machine of one bidirectional AnalyzeSession stream.
//
// Each action is answered in order; results the analyzer raises on its own (cart abandonment,
// bounce) come from a grpc::Alarm on this call's queue and go through the same outbox, so there
// is never more than one write in flight. When the client reads slower than it sends, the outbox
// reaches kMaxOutbox and the call stops reading (flow control pushes back on the client) until
// the outbox drains. All session state lives in the analyzer and is freed with the call.
class AnalyzeCall final : public CallBase {
 public:
  static constexpr size_t kMaxOutbox = 256;
  AnalyzeCall(ServiceState& state, Worker& worker);
  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kRequest, kRead, kWrite, kTimer, kFinish, kDone, kIdle };
  void Start();
  void OnRead();
  void CollectDue();
  void ArmTimer();
  void PumpWrites();
  void MaybeRead();
  void Finish(const grpc::Status& status);
  void SendStatus();
  void PublishSessionCount();

  ServiceState& state_;
  Worker& worker_;
  LiveCall live_call_{worker_};
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<analytics::AnalysisResult, analytics::UserAction> stream_{
      &context_};
  analytics::UserAction action_;
  session::SessionAnalyzer analyzer_;
  std::deque<analytics::AnalysisResult> outbox_;
  std::vector<analytics::AnalysisResult> due_;
  grpc::Alarm timer_;
  Tag request_tag_{this, kRequest};
  Tag read_tag_{this, kRead};
  Tag write_tag_{this, kWrite};
  Tag timer_tag_{this, kTimer};
  Tag finish_tag_{this, kFinish};
  Tag done_tag_{this, kDone};
  Tag idle_tag_{this, kIdle};
  IdleTimer idle_;  // ends a stream whose client sends nothing for stream_idle_timeout_ms
  int pending_ops_ = 0;
  bool done_ = false;
  bool read_in_flight_ = false;
  bool reads_closed_ = false;
  bool write_in_flight_ = false;
  bool timer_armed_ = false;
  bool finish_called_ = false;
  uint64_t invalid_actions_ = 0;
  size_t published_sessions_ = 0;  // this call's share of the analyze_sessions gauge
  grpc::StatusCode final_code_ = grpc::StatusCode::OK;
  grpc::Status final_status_;
  StreamBooking booking_;
};

}  // namespace rta::server
