#pragma once

#include <grpcpp/server_context.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "analytics.grpc.pb.h"
#include "server/aggregator/aggregator.h"
#include "server/aggregator/clock.h"
#include "server/server_config.h"
#include "server/server_metrics.h"
#include "server/session/session_budget.h"
#include "server/snapshot_hub.h"

namespace rta::server {

// The async service: the two subscription methods are raw (ByteBuffer) so that one serialized
// update is shared by every subscriber; the other methods are typed.
using AsyncAnalyticsService = analytics::AnalyticsService::WithRawMethod_SubscribeMetrics<
    analytics::AnalyticsService::WithRawMethod_SubscribeMetricBatches<
        analytics::AnalyticsService::WithAsyncMethod_ReportEvent<
            analytics::AnalyticsService::WithAsyncMethod_ReportEventBatches<
                analytics::AnalyticsService::WithAsyncMethod_AnalyzeSession<
                    analytics::AnalyticsService::WithAsyncMethod_GetMetrics<
                        analytics::AnalyticsService::Service>>>>>>;

// What every call state machine shares. Owned by the server; outlives every call.
struct ServiceState {
  ServiceState(const ServerConfig& config_in, AsyncAnalyticsService& service_in,
               agg::Aggregator& aggregator_in, ServerMetrics& metrics_in, SnapshotHub& hub_in,
               const agg::Clock& clock_in)
      : config(config_in),
        service(service_in),
        aggregator(aggregator_in),
        metrics(metrics_in),
        hub(hub_in),
        clock(clock_in) {}

  const ServerConfig& config;
  AsyncAnalyticsService& service;
  agg::Aggregator& aggregator;
  ServerMetrics& metrics;
  SnapshotHub& hub;
  const agg::Clock& clock;
  std::atomic<bool> shutting_down{false};
  std::atomic<uint32_t> open_streams{0};
  std::atomic<uint32_t> subscribers{0};
  std::atomic<uint64_t> ingest_streams_started{0};
  // Subscribers that asked for push_on_change, counted by the workers as they register them;
  // while there are any, ingest asks for an early tick after each message (coalesced: at most
  // one early tick pending).
  std::atomic<uint32_t> push_subscribers{0};
  std::function<void()> request_early_tick;
  // Sessions of all AnalyzeSession streams together (--max-analyze-sessions); atomic inside.
  session::SessionBudget analyze_sessions{config.max_analyze_sessions};
};

// Books one streaming call in the server-wide accounting: the open-streams limit and gauge when
// it starts, the RPC count by status code and its duration when it ends. Used from the call's
// thread only.
class StreamBooking {
 public:
  // Counts the stream as open; RESOURCE_EXHAUSTED when the server already holds max_streams
  // (the stream stays booked either way, so Close() must follow).
  grpc::Status Open(ServiceState& state, Method method) {
    method_ = method;
    open_ = true;
    start_ = std::chrono::steady_clock::now();
    state.metrics.open_streams(method).Increment();
    if (state.open_streams.fetch_add(1, std::memory_order_relaxed) >= state.config.max_streams) {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "server has reached max_streams (" +
                                                        std::to_string(state.config.max_streams) +
                                                        " open streams); retry later"};
    }
    return grpc::Status::OK;
  }
  // Ends the booking once, with the call's final status code; no-op if Open() never ran.
  void Close(ServiceState& state, grpc::StatusCode code) {
    if (!open_) return;
    open_ = false;
    state.open_streams.fetch_sub(1, std::memory_order_relaxed);
    state.metrics.open_streams(method_).Decrement();
    state.metrics.RpcHandled(
        method_, code,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  Method method_ = Method::kSubscribeMetrics;
  bool open_ = false;
  std::chrono::steady_clock::time_point start_;
};

// One pending operation of a call: the completion-queue tag. Each call owns one Tag per kind of
// operation it can have in flight, so a tag is never reused while pending.
class CallBase;
struct Tag {
  CallBase* call;
  int op;
};

// A call's state machine. OnEvent runs on the call's completion-queue thread only, so a call
// needs no locks; it deletes itself when no operation can complete on it any more.
class CallBase {
 public:
  virtual ~CallBase() = default;
  virtual void OnEvent(int op, bool ok) = 0;
};

inline void DispatchTag(void* tag, bool ok) {
  auto* t = static_cast<Tag*>(tag);
  t->call->OnEvent(t->op, ok);
}

}  // namespace rta::server
