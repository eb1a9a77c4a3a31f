#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "server/idle_timer.h"
#include "server/ingest_call.h"
#include "server/service_state.h"
#include "server/worker.h"

namespace rta::server {

// State machine of one PublishEvents call (bidirectional): each PublishRequest is a batch of
// one producer; it is checked against the producer's last sequence (ProducerTable), its events
// are counted and appended to the event log as one record, and its PublishAck goes out, in
// order, once the log is durable up to that record.
//
// Pipelined: the call keeps reading while earlier batches wait for the disk, up to
// publish_window_batches unacknowledged batches; beyond that it stops reading, which stops the
// client through HTTP/2 flow control. One read and one write in flight at most; the head of the
// queue of acknowledgements waits on the worker (Worker::AwaitDurable), and since durability is
// monotonic the ones behind it are usually ready when it is.
//
// Ends with: OK after the client half-closes and every batch is acknowledged;
// INVALID_ARGUMENT for a message that does not parse or a bad producer_id / sequence / batch
// size; FAILED_PRECONDITION for a sequence gap; RESOURCE_EXHAUSTED when the producer table is
// full; UNAVAILABLE when the log cannot write (nothing of that batch was counted) or at
// shutdown; DEADLINE_EXCEEDED after stream_idle_timeout_ms without a message. Batches
// acknowledged before any of these stay acknowledged; the rest the client re-sends, and the
// sequences make that exact.
class PublishCall final : public CallBase {
 public:
  PublishCall(ServiceState& state, Worker& worker);
  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kRequest, kRead, kWrite, kFinish, kDone, kIdle, kDurable };
  struct PendingAck {
    uint64_t lsn;  // durable up to this before the ack may go out (0: at once)
    analytics::PublishAck ack;
  };
  static constexpr Method kMethod = Method::kPublishEvents;

  void Request();
  void StartRead();
  // Parses and takes one batch; queues its acknowledgement. Non-OK: end the stream with it.
  grpc::Status Consume();
  grpc::Status TakeBatch(const analytics::PublishRequest& request, PendingAck* pending);
  // Sends the next acknowledgement when it is durable and no write is in flight; finishes the
  // call once the client has half-closed and nothing is left.
  void Pump();
  void Finish(const grpc::Status& status);

  ServiceState& state_;
  Worker& worker_;
  LiveCall live_call_{worker_};
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> stream_{&context_};
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  analytics::PublishRequest message_;
  std::string parse_scratch_;
  std::string message_bytes_;
  std::deque<PendingAck> acks_;
  IdleTimer idle_;
  Tag request_tag_{this, kRequest};
  Tag read_tag_{this, kRead};
  Tag write_tag_{this, kWrite};
  Tag finish_tag_{this, kFinish};
  Tag done_tag_{this, kDone};
  Tag idle_tag_{this, kIdle};
  int pending_ops_ = 0;
  uint64_t messages_ = 0;
  bool done_ = false;
  bool reading_ = false;       // a read is in flight
  bool read_paused_ = false;   // the window is full: reading resumes as acks go out
  bool half_closed_ = false;   // the client sent its last batch
  bool writing_ = false;       // a write is in flight
  bool awaiting_durable_ = false;
  bool broken_ = false;        // a write failed: the call is gone, only cleanup is left
  bool finish_called_ = false;
  std::optional<grpc::Status> finish_after_write_;
  grpc::StatusCode final_code_ = grpc::StatusCode::OK;
  StreamBooking booking_;
};

}  // namespace rta::server
