#include "server/get_metrics_call.h"

namespace rta::server {

grpc::Status AnswerMetricsQuery(const analytics::MetricsQuery& query, WindowMask default_windows,
                                const PublishedSnapshot& latest, analytics::MetricsSnapshot* out) {
  MetricFilter filter;
  grpc::Status status =
      MetricFilter::Build(query.metric_types(), query.windows(), default_windows, &filter);
  if (!status.ok()) return status;
  const agg::Snapshot& snapshot = *latest.snapshot;
  out->set_sequence(snapshot.sequence);
  out->set_epoch(snapshot.epoch);
  out->set_timestamp_ms(snapshot.time_ms);
  for (size_t i = 0; i < snapshot.points.size(); ++i) {
    const agg::MetricPoint& point = snapshot.points[i];
    if (!filter.Matches(latest.metric_ids[i], point.window)) continue;
    FillMetricUpdate(snapshot, point, analytics::UPDATE_KIND_SNAPSHOT, out->add_metrics());
  }
  return grpc::Status::OK;
}

GetMetricsCall::GetMetricsCall(ServiceState& state, Worker& worker)
    : state_(state), worker_(worker) {
  state_.service.RequestGetMetrics(&context_, &query_, &responder_, worker_.cq(), worker_.cq(),
                                   &request_tag_);
}

void GetMetricsCall::OnEvent(int op, bool ok) {
  if (op == kFinish) {
    state_.metrics.RpcHandled(
        Method::kGetMetrics, ok ? code_ : grpc::StatusCode::CANCELLED,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count());
    delete this;
    return;
  }
  if (!ok) {  // shutting down before a call arrived
    delete this;
    return;
  }
  if (!state_.shutting_down.load(std::memory_order_relaxed)) new GetMetricsCall(state_, worker_);
  start_time_ = std::chrono::steady_clock::now();
  analytics::MetricsSnapshot response;
  auth::Principal principal;
  grpc::Status status = state_.Authenticate(context_, Method::kGetMetrics, &principal);
  if (status.ok())
    status = AnswerMetricsQuery(query_, state_.default_windows, *state_.hub.Latest(), &response);
  code_ = status.error_code();
  if (status.ok()) {
    responder_.Finish(response, status, &finish_tag_);
  } else {
    responder_.FinishWithError(status, &finish_tag_);
  }
}

}  // namespace rta::server
