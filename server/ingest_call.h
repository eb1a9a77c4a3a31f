#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>

#include <chrono>
#include <cstdint>

#include "server/service_state.h"

namespace rta::server {

class Worker;

// Counts a stream's events and builds its EventResponse; shared by both ingest methods.
class EventTally {
 public:
  static constexpr int kMaxErrors = 100;
  // Checks the server-level limits, then hands the event to the aggregator.
  void Ingest(ServiceState& state, const analytics::EventData& event);
  // Adds this message's counts to Prometheus and resets the per-message counters.
  void FlushMetrics(ServerMetrics& metrics);
  const analytics::EventResponse& response() const { return response_; }

 private:
  void Reject(RejectReason reason, const analytics::EventData& event, std::string_view field,
              const std::string& reason_text);

  analytics::EventResponse response_;
  uint64_t position_ = 0;
  uint64_t accepted_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t rejected_[kRejectReasonCount] = {};
};

// State machine of one client-streaming ingest call: ReportEvent (one EventData per message) or
// ReportEventBatches (an EventBatch per message). One read in flight; each message is ingested
// on this queue's thread as it arrives; the response is sent when the client half-closes.
template <typename Message>
class IngestCall final : public CallBase {
 public:
  IngestCall(ServiceState& state, Worker& worker);
  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kRequest, kRead, kFinish, kDone };
  static constexpr Method kMethod = std::is_same_v<Message, analytics::EventBatch>
                                        ? Method::kReportEventBatches
                                        : Method::kReportEvent;
  void Request();
  // Ingests one message; returns a non-OK status to end the stream with.
  grpc::Status Consume();
  void Finish(const grpc::Status& status);

  ServiceState& state_;
  Worker& worker_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReader<analytics::EventResponse, Message> reader_{&context_};
  Message message_;
  EventTally tally_;
  Tag request_tag_{this, kRequest};
  Tag read_tag_{this, kRead};
  Tag finish_tag_{this, kFinish};
  Tag done_tag_{this, kDone};
  int pending_ops_ = 0;
  bool done_ = false;
  bool finish_called_ = false;
  uint64_t stream_number_ = 0;
  uint64_t messages_ = 0;
  grpc::StatusCode final_code_ = grpc::StatusCode::OK;
  StreamBooking booking_;
};

extern template class IngestCall<analytics::EventData>;
extern template class IngestCall<analytics::EventBatch>;

}  // namespace rta::server
