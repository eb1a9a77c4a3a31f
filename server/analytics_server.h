#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "server/aggregator/aggregator.h"
#include "server/server_config.h"

namespace rta::server {

// The whole server: gRPC AnalyticsService (async completion-queue API), health and reflection,
// the aggregator with its tick, and the Prometheus endpoint.
//
// Start() binds and starts every thread; Shutdown() stops accepting, gives open streams up to the
// deadline to finish, then shuts down and drains every completion queue and joins every thread.
// Shutdown() is idempotent and also runs from the destructor. Not copyable. Start/Shutdown must be
// called from one thread; the accessors are thread-safe once Start() returned.
class AnalyticsServer {
 public:
  // clock: nullptr for the system clock; otherwise must outlive the server.
  explicit AnalyticsServer(ServerConfig config, const agg::Clock* clock = nullptr);
  ~AnalyticsServer();
  AnalyticsServer(const AnalyticsServer&) = delete;
  AnalyticsServer& operator=(const AnalyticsServer&) = delete;

  // Binds the gRPC and metrics listeners and starts serving. On failure returns false and sets
  // *error to a message naming the address and the reason.
  bool Start(std::string* error);
  // Ports actually bound (useful with port 0). 0 before Start().
  int grpc_port() const;
  int metrics_port() const;
  int http_port() const;  // 0 without --http-listen

  void Shutdown(std::chrono::milliseconds grace);
  // SIGHUP: re-reads --tls-cert, --tls-key and --tls-client-ca (auth/tls_files.h). New
  // connections get them within a second; open ones keep theirs. False with *error (the old
  // material kept) when a file fails its check, or when the server has no TLS.
  bool ReloadTls(std::string* error);
  // Blocks until Shutdown() has completed (e.g. from a signal handler).
  void Wait();

  agg::Aggregator& aggregator();
  // Runs one aggregator tick now and publishes it to subscribers (tests).
  void TickForTest();
  // Before Start(): called after each ingest message is counted, with the stream's server-wide
  // number (1-based) and the message's (1-based); a non-OK status ends that stream with it
  // (tests of client retries).
  void SetIngestFaultForTest(std::function<grpc::Status(uint64_t stream, uint64_t message)> fault);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rta::server
