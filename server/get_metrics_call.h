#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_unary_call.h>

#include <chrono>

#include "server/service_state.h"
#include "server/worker.h"

namespace rta::server {

// GetMetrics' answer from a published snapshot (an empty window list means `default_windows`,
// as for subscriptions); INVALID_ARGUMENT naming an unknown metric or window. Shared by the gRPC
// call below and by gRPC-Web on the HTTP port.
grpc::Status AnswerMetricsQuery(const analytics::MetricsQuery& query, WindowMask default_windows,
                                const PublishedSnapshot& latest, analytics::MetricsSnapshot* out);

// State machine of one unary GetMetrics call: answered from the latest published snapshot.
class GetMetricsCall final : public CallBase {
 public:
  GetMetricsCall(ServiceState& state, Worker& worker);
  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kRequest, kFinish };
  ServiceState& state_;
  Worker& worker_;
  LiveCall live_call_{worker_};
  grpc::ServerContext context_;
  analytics::MetricsQuery query_;
  grpc::ServerAsyncResponseWriter<analytics::MetricsSnapshot> responder_{&context_};
  Tag request_tag_{this, kRequest};
  Tag finish_tag_{this, kFinish};
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  std::chrono::steady_clock::time_point start_time_;
};

}  // namespace rta::server
