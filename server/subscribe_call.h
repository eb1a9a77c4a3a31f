#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/metric_filter.h"
#include "server/service_state.h"
#include "server/snapshot_hub.h"
#include "server/worker.h"

namespace rta::server {

// State machine of one SubscribeMetrics or SubscribeMetricBatches stream.
//
// At most one write is in flight. Each write sends the next message of the current batch; a
// batch is the initial snapshot (plus history), or the series that changed since the last
// batch this subscriber completed. A batch points at the published snapshot's shared messages
// (and holds that snapshot) rather than copying them; only the few messages that are this
// subscriber's own (resume answer, skipped count, history, end of snapshot) are serialized for
// it. A subscriber still busy when a new snapshot is published simply builds its next batch
// from the newest snapshot (latest wins), so its memory is bounded by one batch; the ticks it
// missed are reported in `skipped`. SubscribeMetricBatches sends the same updates with as many
// of them per message as fit in kMaxBatchMessageBytes: the message is the updates' bytes with
// field headers between, copied into one slice of exactly its size.
class SubscribeCall final : public CallBase {
 public:
  static constexpr size_t kMaxBatchMessageBytes = 256 * 1024;

  SubscribeCall(ServiceState& state, Worker& worker, bool batched);
  void OnEvent(int op, bool ok) override;
  // From the worker: a new snapshot is out (`regular`: a regular tick was published since the
  // last call, even if `latest` is a newer early one) / the server is shutting down.
  void OnPublished(const std::shared_ptr<const PublishedSnapshot>& latest, int64_t now_ms,
                   bool regular);
  void OnShutdown();
  size_t worker_slot = 0;  // position in the worker's list, maintained by the worker

 private:
  enum Op { kRequest, kWrite, kFinish, kDone };
  void Start();
  void BuildInitialBatch(const analytics::SubscriptionRequest& request,
                         std::shared_ptr<const PublishedSnapshot> latest);
  bool BuildDeltaBatch(const std::shared_ptr<const PublishedSnapshot>& latest, int64_t now_ms);
  void AddOwnMessage(const analytics::MetricUpdate& update);
  void ReleaseBatch();
  void WriteNext();
  void WriteBatchMessage();
  void Finish(const grpc::Status& status);
  void MaybeDelete();

  ServiceState& state_;
  Worker& worker_;
  LiveCall live_call_{worker_};
  const bool batched_;  // SubscribeMetricBatches
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_{&context_};
  Tag request_tag_{this, kRequest};
  Tag write_tag_{this, kWrite};
  Tag finish_tag_{this, kFinish};
  Tag done_tag_{this, kDone};

  int pending_ops_ = 0;
  bool registered_ = false;
  bool done_ = false;
  bool write_in_flight_ = false;
  bool finish_called_ = false;
  bool finish_requested_ = false;
  StreamBooking booking_;
  std::chrono::steady_clock::time_point write_started_;
  grpc::StatusCode final_code_ = grpc::StatusCode::OK;

  MetricFilter filter_;
  int64_t interval_ms_ = 0;
  bool push_on_change_ = false;
  bool regular_tick_due_ = false;  // a regular tick not yet taken into a batch
  int64_t last_batch_ms_ = 0;
  uint64_t epoch_ = 0;
  uint64_t sent_sequence_ = 0;   // every change up to this sequence has been written
  uint64_t batch_sequence_ = 0;  // the sequence the current batch brings the client to
  uint64_t missed_ticks_ = 0;    // snapshots published while this subscriber was busy
  std::shared_ptr<const PublishedSnapshot> batch_source_;  // owns what batch_ points at
  std::vector<SerializedUpdate> own_messages_;  // reserved up front: batch_ points into it
  std::vector<const SerializedUpdate*> batch_;
  size_t batch_pos_ = 0;
  size_t updates_in_flight_ = 0;  // in the write in flight
};

}  // namespace rta::server
