#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "server/idle_timer.h"
#include "server/service_state.h"
#include "server/worker.h"

namespace rta::server {

// Counts a stream's events and builds its EventResponse; shared by both ingest methods.
class EventTally {
 public:
  static constexpr int kMaxErrors = 100;
  // Checks the server-level limits, then hands the event to the aggregator. True when the
  // event was accepted (counted), false for a duplicate or a refusal.
  bool Ingest(ServiceState& state, const analytics::EventData& event);
  // An event that could not even be read into an EventData (the HTTP front end's JSON of the
  // wrong shape): refused as invalid at its position, with `reason` ("field: what is wrong").
  // `partial` holds what was read before the fault (its event_id names it, when read).
  void RejectUnreadable(const analytics::EventData& partial, std::string_view reason);
  // Adds this message's counts to Prometheus and resets the per-message counters.
  void FlushMetrics(ServerMetrics& metrics);
  const analytics::EventResponse& response() const { return response_; }
  uint64_t events() const { return position_; }

 private:
  void Reject(RejectReason reason, const analytics::EventData& event, std::string_view field,
              const std::string& reason_text);

  analytics::EventResponse response_;
  uint64_t position_ = 0;
  uint64_t accepted_ = 0;
  uint64_t backfilled_ = 0;  // of accepted_: older than the live windows, for the history only
  uint64_t duplicates_ = 0;
  uint64_t rejected_[kRejectReasonCount] = {};
};

// State machine of one client-streaming ingest call: ReportEvent (one EventData per message) or
// ReportEventBatches (an EventBatch per message). One read in flight; each message is parsed
// (raw: see message_parse.h) and ingested on this queue's thread as it arrives; the response is
// sent when the client half-closes. A message that does not parse, an idle client
// (stream_idle_timeout_ms) or shutdown end the stream early with a non-OK status, and the
// counts so far go in the trailer `rta-event-response-bin`.
template <typename Message>
class IngestCall final : public CallBase {
 public:
  IngestCall(ServiceState& state, Worker& worker);
  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kRequest, kRead, kFinish, kDone, kIdle, kDurable };
  static constexpr Method kMethod = std::is_same_v<Message, analytics::EventBatch>
                                        ? Method::kReportEventBatches
                                        : Method::kReportEvent;
  void Request();
  void StartRead();
  // Parses and ingests one message; returns a non-OK status to end the stream with.
  grpc::Status Consume();
  // Ends the stream with `status` once everything it counted is durable.
  void Finish(const grpc::Status& status);
  void FinishNow(const grpc::Status& status);

  ServiceState& state_;
  Worker& worker_;
  LiveCall live_call_{worker_};
  grpc::ServerContext context_;
  grpc::ServerAsyncReader<grpc::ByteBuffer, grpc::ByteBuffer> reader_{&context_};
  grpc::ByteBuffer request_;
  Message message_;
  std::string parse_scratch_;
  std::string message_bytes_;
  uint64_t durable_needed_ = 0;  // the response waits until the log is durable up to this
  grpc::Status deferred_status_;  // Finish()'s status while the response waits for the log
  EventTally tally_;
  IdleTimer idle_;
  Tag request_tag_{this, kRequest};
  Tag read_tag_{this, kRead};
  Tag finish_tag_{this, kFinish};
  Tag done_tag_{this, kDone};
  Tag idle_tag_{this, kIdle};
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
