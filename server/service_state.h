#pragma once

#include <grpcpp/server_context.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "analytics.grpc.pb.h"
#include "server/aggregator/aggregator.h"
#include "server/aggregator/clock.h"
#include "server/auth/authenticator.h"
#include "server/auth/token_limits.h"
#include "server/metric_filter.h"
#include "server/peer_address.h"
#include "server/peer_stream_limiter.h"
#include "server/producer_table.h"
#include "server/server_config.h"
#include "server/server_metrics.h"
#include "server/session/session_budget.h"
#include "server/snapshot_hub.h"
#include "server/storage/event_log.h"

namespace rta::storage {
class RollupStore;
}  // namespace rta::storage

namespace rta::server {

class RollupWriter;
class RangeQueryRunner;
class LiveSegments;

// The async service: the two subscription methods are raw (ByteBuffer) so that one serialized
// update is shared by every subscriber; the other methods are typed.
// The ingest methods are raw too, so that a message that fails to parse is told apart from the
// client's half-close (see message_parse.h).
using AsyncAnalyticsService = analytics::AnalyticsService::WithRawMethod_PublishEvents<
    analytics::AnalyticsService::WithRawMethod_SubscribeMetrics<
        analytics::AnalyticsService::WithRawMethod_SubscribeMetricBatches<
            analytics::AnalyticsService::WithRawMethod_ReportEvent<
                analytics::AnalyticsService::WithRawMethod_ReportEventBatches<
                    analytics::AnalyticsService::WithAsyncMethod_AnalyzeSession<
                        analytics::AnalyticsService::WithAsyncMethod_GetMetrics<
                            analytics::AnalyticsService::WithAsyncMethod_QueryMetrics<
                                analytics::AnalyticsService::Service>>>>>>>>;

// What every call state machine shares. Owned by the server; outlives every call.
struct ServiceState {
  ServiceState(const ServerConfig& config_in, AsyncAnalyticsService& service_in,
               agg::Aggregator& aggregator_in, ServerMetrics& metrics_in, SnapshotHub& hub_in,
               const agg::Clock& clock_in, ProducerTable& producers_in)
      : config(config_in),
        service(service_in),
        aggregator(aggregator_in),
        metrics(metrics_in),
        hub(hub_in),
        clock(clock_in),
        producers(producers_in),
        peer_streams(config_in.max_streams_per_peer) {
    // ParseServerConfig has checked it; a config built in code with a bad value gets the
    // default, WINDOW_TOTAL.
    if (!ParseDefaultWindows(config.default_window, &default_windows)) {
      default_windows = WindowBit(analytics::WINDOW_TOTAL);
    }
  }

  const ServerConfig& config;
  AsyncAnalyticsService& service;
  agg::Aggregator& aggregator;
  ServerMetrics& metrics;
  SnapshotHub& hub;
  const agg::Clock& clock;
  // What an empty `windows` list in a subscription or GetMetrics stands for (--default-window).
  WindowMask default_windows = WindowBit(analytics::WINDOW_TOTAL);
  // PublishEvents producers' last sequences (thread-safe inside).
  ProducerTable& producers;
  std::atomic<bool> shutting_down{false};
  std::atomic<uint32_t> open_streams{0};
  std::atomic<uint32_t> subscribers{0};
  std::atomic<uint64_t> ingest_streams_started{0};
  // Subscribers that asked for push_on_change, counted by the workers as they register them;
  // while there are any, ingest asks for an early tick after each message (coalesced: at most
  // one early tick pending).
  std::atomic<uint32_t> push_subscribers{0};
  std::function<void()> request_early_tick;
  PeerStreamLimiter peer_streams;
  // Test only, set through AnalyticsServer::SetIngestFaultForTest() before Start(): called after
  // each ingest message is counted with the stream's number (1-based, server-wide) and the
  // message's (1-based); a non-OK status ends the stream with it.
  std::function<grpc::Status(uint64_t stream, uint64_t message)> ingest_fault_for_test;
  // The event log every accepted ingest message is appended to before it is acknowledged;
  // null in memory-only mode (--data-dir ""). Set before the workers start; outlives them.
  storage::EventLog* log = nullptr;
  // Cluster mode (--cluster): ingest validates and logs; the partitions' owners de-duplicate
  // and count (server/cluster/cluster_node.h), so nothing is counted here at ingest.
  bool cluster = false;
  // Sessions of all AnalyzeSession streams together (--max-analyze-sessions); atomic inside.
  session::SessionBudget analyze_sessions{config.max_analyze_sessions};
  // Decides whether a call may go on (its token and role); set before the workers start,
  // outlives them. Null: every call is allowed (tests that build a ServiceState themselves).
  const auth::Authenticator* auth = nullptr;
  // The history (null in memory-only mode): the rollup writer every appended log record is
  // offered to, the store range queries read, and the thread they run on. Set before the
  // workers start; outlive them.
  RollupWriter* rollups = nullptr;
  const storage::RollupStore* history = nullptr;
  RangeQueryRunner* range_queries = nullptr;
  // Subscriptions with filters (live segments). Null: refused (tests that build a ServiceState
  // themselves). Set before the workers start; outlives them.
  LiveSegments* live_segments = nullptr;
  auth::TokenLimits token_limits{
      {config.token_events_per_second, config.token_max_streams, config.token_max_subscriptions}};

  // The first step of every call: OK, or the status that refuses it (counted by method and
  // code). *principal says who called (empty while authentication is off).
  grpc::Status Authenticate(const grpc::ServerContext& context, Method method,
                            auth::Principal* principal) {
    if (auth == nullptr) return grpc::Status::OK;
    grpc::Status status = auth->Check(context, MethodName(method), clock.NowMs(), principal);
    if (!status.ok()) metrics.AddAuthRefused(method, status.error_code());
    return status;
  }
  // `events` more events from the caller: OK, or RESOURCE_EXHAUSTED when its token is over
  // --token-events-per-second (saying when to retry).
  grpc::Status TakeEvents(const auth::Principal& principal, uint64_t events) {
    int64_t retry_after_ms = 0;
    if (token_limits.TakeEvents(principal.token_id, events, clock.NowMs(), &retry_after_ms)) {
      return grpc::Status::OK;
    }
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            "token " + principal.token_id + " is over its limit of " +
                std::to_string(config.token_events_per_second) +
                " events/s (--token-events-per-second); retry in " +
                std::to_string(retry_after_ms) + " ms"};
  }
};

// Books one streaming call in the server-wide accounting: the open-streams limit and gauge when
// it starts, the RPC count by status code and its duration when it ends. Used from the call's
// thread only.
class StreamBooking {
 public:
  // Counts the stream as open; RESOURCE_EXHAUSTED when the server already holds max_streams,
  // or the client's address already holds max_streams_per_peer (the stream stays booked either
  // way, so Close() must follow).
  // Authenticates first (ServiceState::Authenticate): a refused caller takes no slot of its
  // address or token, and counts against max_streams only until its call ends (at once).
  grpc::Status Open(ServiceState& state, Method method, const grpc::ServerContext& context) {
    method_ = method;
    open_ = true;
    start_ = std::chrono::steady_clock::now();
    state.metrics.open_streams(method).Increment();
    if (grpc::Status status = state.Authenticate(context, method, &principal_); !status.ok()) {
      state.open_streams.fetch_add(1, std::memory_order_relaxed);  // Close() takes it back
      return status;
    }
    if (state.open_streams.fetch_add(1, std::memory_order_relaxed) >= state.config.max_streams) {
      state.metrics.AddStreamRefused(StreamRefusal::kServerLimit);
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "server has reached max_streams (" +
                                                        std::to_string(state.config.max_streams) +
                                                        " open streams); retry later"};
    }
    const std::string peer = context.peer();
    const std::string_view address = PeerAddress(peer);
    if (!state.peer_streams.TryAcquire(address)) {
      state.metrics.AddStreamRefused(StreamRefusal::kPeerLimit);
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "client " + std::string(address) + " has reached max_streams_per_peer (" +
                  std::to_string(state.config.max_streams_per_peer) +
                  " open streams); close some or retry later"};
    }
    peer_address_ = address;
    const bool subscription =
        method == Method::kSubscribeMetrics || method == Method::kSubscribeMetricBatches;
    std::string why;
    if (!state.token_limits.OpenStream(principal_.token_id, subscription, &why)) {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, why};
    }
    token_booked_ = true;
    return grpc::Status::OK;
  }
  // Who opened the stream (empty while authentication is off).
  const auth::Principal& principal() const { return principal_; }
  // Ends the booking once, with the call's final status code; no-op if Open() never ran.
  void Close(ServiceState& state, grpc::StatusCode code) {
    if (!open_) return;
    open_ = false;
    if (peer_address_) state.peer_streams.Release(*peer_address_);
    if (token_booked_) {
      state.token_limits.CloseStream(
          principal_.token_id,
          method_ == Method::kSubscribeMetrics || method_ == Method::kSubscribeMetricBatches);
    }
    state.open_streams.fetch_sub(1, std::memory_order_relaxed);
    state.metrics.open_streams(method_).Decrement();
    state.metrics.RpcHandled(
        method_, code,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  Method method_ = Method::kSubscribeMetrics;
  bool open_ = false;
  std::optional<std::string> peer_address_;  // set once the peer's stream count holds this one
  std::chrono::steady_clock::time_point start_;
  auth::Principal principal_;
  bool token_booked_ = false;  // the token's stream count holds this one
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
