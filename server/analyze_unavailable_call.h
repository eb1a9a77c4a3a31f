#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/async_stream.h>

#include "server/service_state.h"

namespace rta::server {

class Worker;

// Answers AnalyzeSession with UNIMPLEMENTED until the session analyzer is built into the server,
// so that a client gets a clear status at once instead of a call that is never picked up.
class AnalyzeUnavailableCall final : public CallBase {
 public:
  AnalyzeUnavailableCall(ServiceState& state, Worker& worker);
  void OnEvent(int op, bool ok) override;

 private:
  enum Op { kRequest, kFinish };
  ServiceState& state_;
  Worker& worker_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<analytics::AnalysisResult, analytics::UserAction> stream_{
      &context_};
  Tag request_tag_{this, kRequest};
  Tag finish_tag_{this, kFinish};
};

}  // namespace rta::server
