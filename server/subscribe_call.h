#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "server/live_segments.h"
#include "server/metric_filter.h"
#include "server/service_state.h"
#include "server/snapshot_hub.h"
#include "server/subscriber_batch.h"
#include "server/worker.h"

namespace rta::server {

// State machine of one SubscribeMetrics or SubscribeMetricBatches stream: the gRPC side of a
// subscriber (accounting, the one write in flight, the slow-reader limit, finishing). What it
// writes, message by message, comes from its SubscriberBatch (subscriber_batch.h): the initial
// snapshot with the history walked from the shared chunks, then the series that changed since
// the last batch it completed, from the newest snapshot (latest wins, missed ticks reported in
// `skipped`), so its memory is bounded by one batch's pointers and the message in flight.
// Runs on its worker's completion-queue thread only; deletes itself when nothing can complete
// on it any more.
class SubscribeCall final : public CallBase {
 public:
  static constexpr size_t kMaxBatchMessageBytes = SubscriberBatch::kMaxBatchMessageBytes;

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
  // The snapshot this subscriber follows: its live segment's, or `global`.
  std::shared_ptr<const PublishedSnapshot> Latest(
      const std::shared_ptr<const PublishedSnapshot>& global) const;
  void WriteNext();
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

  // From the request, set in Start(); batch_ gets a copy of them for its rules.
  MetricFilter filter_;
  int64_t interval_ms_ = 0;
  bool push_on_change_ = false;
  SubscriberBatch batch_;  // what to write next
  std::unique_ptr<LiveSegments::Watch> segment_;  // with filters: the live segment watched
  // The request, while its segment has not published a first snapshot (sent at the next tick).
  std::unique_ptr<analytics::SubscriptionRequest> pending_request_;
  size_t updates_in_flight_ = 0;  // in the write in flight
};

}  // namespace rta::server
