#include "server/analyze_unavailable_call.h"

#include "server/worker.h"

namespace rta::server {

AnalyzeUnavailableCall::AnalyzeUnavailableCall(ServiceState& state, Worker& worker)
    : state_(state), worker_(worker) {
  state_.service.RequestAnalyzeSession(&context_, &stream_, worker_.cq(), worker_.cq(),
                                       &request_tag_);
}

void AnalyzeUnavailableCall::OnEvent(int op, bool ok) {
  if (op == kFinish || !ok) {
    if (op == kFinish)
      state_.metrics.RpcHandled(Method::kAnalyzeSession, grpc::StatusCode::UNIMPLEMENTED, 0);
    delete this;
    return;
  }
  if (!state_.shutting_down.load(std::memory_order_relaxed)) {
    new AnalyzeUnavailableCall(state_, worker_);
  }
  stream_.Finish(
      {grpc::StatusCode::UNIMPLEMENTED, "AnalyzeSession is not available in this server build yet"},
      &finish_tag_);
}

}  // namespace rta::server
