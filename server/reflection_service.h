#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "server/aggregator/clock.h"
#include "server/auth/authenticator.h"
#include "server/server_metrics.h"

namespace rta::server {

// grpc.reflection.v1alpha.ServerReflection, so that grpcurl, grpc_cli and Postman can list the
// services and describe their messages: answered from the protobuf descriptors linked into this
// binary.
//
// Who may call it: anyone on loopback (the operator's own tools, as before), and beyond loopback
// only a caller with a live token, of any role (access_policy.cc); with authentication off,
// anyone. Why not gRPC's reflection plugin: it is a synchronous service that cannot be told who
// may call it (see proto/grpc/reflection/v1alpha/reflection.proto).
//
// Threading: one reactor per stream, on gRPC's callback threads; a stream reads one request,
// writes its answer, then reads the next, so a reactor is never used by two threads at once.
// The service itself is immutable after construction.
class ReflectionService final
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  ReflectionService(std::vector<std::string> services, const auth::Authenticator& authenticator,
                    ServerMetrics& metrics, const agg::Clock& clock)
      : services_(std::move(services)),
        authenticator_(authenticator),
        metrics_(metrics),
        clock_(clock) {}

  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  // The answer to one request. A file comes with every file it imports (transitively), as
  // gRPC's own reflection sends them: a client builds its descriptor pool from one answer.
  grpc::reflection::v1alpha::ServerReflectionResponse Answer(
      const grpc::reflection::v1alpha::ServerReflectionRequest& request) const;

  ServerMetrics& metrics() const { return metrics_; }

 private:
  const std::vector<std::string> services_;  // full names, as list_services answers them
  const auth::Authenticator& authenticator_;
  ServerMetrics& metrics_;
  const agg::Clock& clock_;
};

}  // namespace rta::server
