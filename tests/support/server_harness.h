#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "analytics.grpc.pb.h"
#include "server/aggregator/clock.h"
#include "server/analytics_server.h"

namespace rta::testing {

// Lists every window in a request's `windows` (an empty list asks only for the server's
// --default-window, WINDOW_TOTAL by default).
inline void AddEveryWindow(google::protobuf::RepeatedField<int>* windows) {
  for (auto window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                      analytics::WINDOW_TOTAL}) {
    windows->Add(window);
  }
}

// A real AnalyticsServer on an ephemeral loopback port (gRPC and Prometheus), with a manual
// clock that starts at the real time. Shut down (with no grace) when destroyed.
class ServerHarness {
 public:
  // Ends an ingest stream with the status it returns (see AnalyticsServer::SetIngestFaultForTest).
  using IngestFault = std::function<grpc::Status(uint64_t stream, uint64_t message)>;
  explicit ServerHarness(server::ServerConfig config = DefaultConfig(),
                         IngestFault ingest_fault = nullptr);
  // Fails every Nth ingest stream (UNAVAILABLE) right after its first message is counted.
  static IngestFault FailEveryNthStreamAfterFirstMessage(uint64_t n);
  ~ServerHarness();

  static server::ServerConfig DefaultConfig();

  server::AnalyticsServer& server() { return *server_; }
  agg::ManualClock& clock() { return clock_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->grpc_port()); }
  std::shared_ptr<grpc::Channel> NewChannel() const;  // a separate connection each call
  std::unique_ptr<analytics::AnalyticsService::Stub> NewStub() const;

  // Reports events on one ReportEventBatches stream and returns the response.
  analytics::EventResponse ReportBatch(const std::vector<analytics::EventData>& events,
                                       grpc::Status* status = nullptr);
  // Ticks and returns the value of one series (no labels), or NaN when absent.
  double Metric(const std::string& name, analytics::Window window);
  analytics::MetricsSnapshot Snapshot(const std::vector<std::string>& names = {});

 private:
  agg::ManualClock clock_;
  std::unique_ptr<server::AnalyticsServer> server_;
};

// An event at the given time (ms), with sensible defaults for the rest.
analytics::EventData MakeEvent(const std::string& id, const std::string& type, int64_t time_ms,
                               const std::string& visitor = "v1",
                               const std::string& session = "s1");

// Waits until pred() holds or the timeout passes; returns pred()'s last value.
bool WaitFor(const std::function<bool()>& pred,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A plain HTTP/1.0 GET on 127.0.0.1:port; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path);

// The value of a Prometheus sample line that starts with `series` (exact series text, e.g.
// `analytics_events_ingested_total` or `analytics_open_streams{method="ReportEvent"}`), or NaN.
double PrometheusValue(const std::string& exposition, const std::string& series);

int64_t NowMs();

}  // namespace rta::testing
