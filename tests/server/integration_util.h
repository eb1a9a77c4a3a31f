#pragma once

// Helpers shared by the in-process integration tests of tests/server (one file per call state
// machine): the real server on an ephemeral loopback port, real gRPC stubs.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "analytics.grpc.pb.h"
#include "tests/support/server_harness.h"

namespace rta::testing {

inline grpc::ByteBuffer BytesToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline std::string BufferToBytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

inline double ScrapeValue(ServerHarness& h, const std::string& series) {
  return rta::testing::PrometheusValue(rta::testing::HttpGet(h.server().metrics_port(), "/metrics"),
                                       series);
}

// Reads until the end of the initial snapshot; returns its updates (SNAPSHOT_END included).
inline std::vector<analytics::MetricUpdate> ReadInitial(
    grpc::ClientReader<analytics::MetricUpdate>& reader) {
  std::vector<analytics::MetricUpdate> updates;
  analytics::MetricUpdate update;
  while (reader.Read(&update)) {
    updates.push_back(update);
    if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) break;
  }
  return updates;
}

inline std::unique_ptr<grpc::ClientContext> DeadlineContext(int seconds = 10) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

}  // namespace rta::testing
