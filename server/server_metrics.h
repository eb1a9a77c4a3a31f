#pragma once

#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>

#include "server/aggregator/aggregator.h"
#include "server/cluster/cluster_node.h"
#include "server/rollup_writer.h"
#include "server/storage/event_log.h"

namespace rta::server {

enum class Method {
  kSubscribeMetrics,
  kReportEvent,
  kReportEventBatches,
  kAnalyzeSession,
  kGetMetrics,
  kSubscribeMetricBatches,
  kPublishEvents,
  // userservice.UserService and userservice.TokenService
  kGetUser,
  kListUsers,
  kUpdateUser,
  kChatSupport,
  kListTokens,
  // grpc.reflection.v1alpha.ServerReflection
  kServerReflectionInfo,
  // analytics.AnalyticsService, added after the others (the order is array indexes)
  kQueryMetrics
};
inline constexpr size_t kMethodCount = 14;
const char* MethodName(Method method);

// Why the server refused an event before or inside the aggregator (Prometheus label values).
enum class RejectReason { kInvalid, kTooOld, kInFuture, kTooLarge };
inline constexpr size_t kRejectReasonCount = 4;

// Why a streaming call was refused at its start (label values of
// analytics_streams_refused_total).
enum class StreamRefusal { kServerLimit, kPeerLimit };
inline constexpr size_t kStreamRefusalCount = 2;

// The server's Prometheus series: the one registry of metrics (no other globals). Every member
// is safe to use from any thread; counters are updated per message or per batch, never per
// event, so that ingest threads do not contend on them.
class ServerMetrics {
 public:
  ServerMetrics();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // `backfilled`: of `accepted`, those older than the live windows (counted by the history only).
  void AddIngested(uint64_t accepted, uint64_t duplicates, uint64_t backfilled = 0);
  void AddRejected(RejectReason reason, uint64_t count);
  void AddUpdatesSent(uint64_t count) { updates_sent_->Increment(static_cast<double>(count)); }
  void AddUpdatesConflated(uint64_t count) {
    updates_conflated_->Increment(static_cast<double>(count));
  }
  void AddSlowSubscriberDisconnect() { slow_disconnects_->Increment(); }
  void AddStreamRefused(StreamRefusal reason) {
    streams_refused_[static_cast<size_t>(reason)]->Increment();
  }
  void AddIdleStreamClosed(Method method) {
    idle_streams_closed_[static_cast<size_t>(method)]->Increment();
  }
  void AddUnparseableMessage(Method method) {
    unparseable_messages_[static_cast<size_t>(method)]->Increment();
  }
  // The HTTP front end (server/http): requests answered by route ("/v1/events", "/healthz",
  // "other") and status, connections open, connections refused over the limits.
  void AddHttpRequest(const char* route, unsigned status);
  prometheus::Gauge& http_connections() { return *http_connections_; }
  void AddHttpConnectionRefused() { http_connections_refused_->Increment(); }
  prometheus::Gauge& subscribers() { return *subscribers_; }
  prometheus::Gauge& open_streams(Method method) {
    return *open_streams_[static_cast<size_t>(method)];
  }
  // Counts a finished RPC by method and status code and observes its duration.
  void RpcHandled(Method method, grpc::StatusCode code, double seconds);
  void ObserveTick(double seconds) { tick_duration_->Observe(seconds); }
  void SessionSignal(agg::SessionSignal signal);
  // One malloc_trim(0): how long it took and how much RSS fell over it.
  void MallocTrimmed(double seconds, uint64_t released_bytes) {
    malloc_trims_->Increment();
    malloc_trim_seconds_->Increment(seconds);
    malloc_trim_released_->Increment(static_cast<double>(released_bytes));
  }
  // Copies the aggregator's own monotonic counters and gauges (called after each tick).
  void UpdateAggregatorStats(const agg::AggregatorStats& stats);
  // Tick thread only: the live segments kept, and the totals opened and refused so far.
  void UpdateLiveSegments(size_t kept, uint64_t opened, uint64_t refused);
  // Cluster mode (tick thread): this node's share of the partitions and its merger's counts.
  void UpdateCluster(const cluster::ClusterStats& stats);
  // Cluster mode (tick thread): the time from a partial's cut at its owner to its merge here.
  void ObserveMergeDelay(double seconds) { merge_delay_->Observe(seconds); }
  // AnalyzeSession sessions tracked across all streams (moved by each call as its count
  // changes), and actions refused because --max-analyze-sessions was reached.
  prometheus::Gauge& analyze_sessions() { return *analyze_sessions_; }
  void AddAnalyzeSessionRefused() { analyze_sessions_refused_->Increment(); }
  // A call refused by authentication: code is UNAUTHENTICATED or PERMISSION_DENIED.
  void AddAuthRefused(Method method, grpc::StatusCode code) {
    auth_refused_[static_cast<size_t>(method)][code == grpc::StatusCode::PERMISSION_DENIED ? 1 : 0]
        ->Increment();
  }

  // Durability (only with a data_dir).
  void AddDuplicateBatch() { duplicate_batches_->Increment(); }
  double accepted_total() const { return accepted_->Value(); }
  void LogOpened(uint64_t torn_tail_bytes, uint64_t corrupt_records_skipped) {
    torn_tail_bytes_->Increment(static_cast<double>(torn_tail_bytes));
    corrupt_records_skipped_->Increment(static_cast<double>(corrupt_records_skipped));
  }
  void Recovered(uint64_t records, uint64_t events, double seconds) {
    recovered_records_->Set(static_cast<double>(records));
    recovered_events_->Set(static_cast<double>(events));
    recovery_seconds_->Set(seconds);
  }
  // A checkpoint cut: how long ingest was held (the freeze) and its size.
  void CheckpointStall(double stall_seconds) { checkpoint_stall_->Observe(stall_seconds); }
  void CheckpointSize(uint64_t bytes) { checkpoint_bytes_->Set(static_cast<double>(bytes)); }
  void CheckpointWritten(double seconds, uint64_t cut_lsn) {
    checkpoints_->Increment();
    checkpoint_write_seconds_->Increment(seconds);
    checkpoint_lsn_->Set(static_cast<double>(cut_lsn));
  }
  void CheckpointFailed() { checkpoint_failures_->Increment(); }
  // The event log's counters and gauges (tick thread).
  void UpdateLogStats(const storage::LogStats& stats, const storage::LogHealth& health,
                      uint64_t durable_lsn);
  // The history's writer (tick thread): its counters, the store's size, and how far it is
  // behind the log's last record.
  void UpdateHistoryStats(const RollupWriterStats& stats, uint64_t disk_bytes, uint64_t last_lsn);
  // The time an event id is remembered at the current rate of accepted events: the configured
  // horizon, or less when the table fills up faster (capacity / rate).
  void SetDedupeEffectiveHorizon(double seconds) { dedupe_effective_horizon_->Set(seconds); }
  void SetProducers(size_t producers) { producers_->Set(static_cast<double>(producers)); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* accepted_;
  prometheus::Counter* duplicates_;
  prometheus::Counter* backfilled_;
  std::array<prometheus::Counter*, kRejectReasonCount> rejected_{};
  prometheus::Counter* updates_sent_;
  prometheus::Counter* updates_conflated_;
  prometheus::Counter* slow_disconnects_;
  std::array<prometheus::Counter*, kStreamRefusalCount> streams_refused_{};
  std::array<prometheus::Counter*, kMethodCount> idle_streams_closed_{};
  std::array<prometheus::Counter*, kMethodCount> unparseable_messages_{};
  prometheus::Gauge* subscribers_;
  std::array<prometheus::Gauge*, kMethodCount> open_streams_{};
  prometheus::Family<prometheus::Counter>* rpcs_handled_family_;
  // Created on first use: most (method, code) pairs never happen.
  std::array<std::array<std::atomic<prometheus::Counter*>, 17>, kMethodCount> rpcs_handled_{};
  std::array<prometheus::Histogram*, kMethodCount> rpc_duration_{};
  prometheus::Histogram* tick_duration_;
  std::array<prometheus::Counter*, 3> signals_{};
  prometheus::Counter* folded_;
  prometheus::Counter* dedupe_early_evictions_;
  prometheus::Gauge* dedupe_capacity_ids_;
  prometheus::Counter* values_truncated_;
  prometheus::Counter* ranked_folded_;
  prometheus::Gauge* key_dictionary_bytes_;
  prometheus::Counter* duplicate_batches_;
  prometheus::Counter* torn_tail_bytes_;
  prometheus::Counter* corrupt_records_skipped_;
  prometheus::Gauge* recovered_records_;
  prometheus::Gauge* recovered_events_;
  prometheus::Gauge* recovery_seconds_;
  prometheus::Histogram* checkpoint_stall_;
  prometheus::Gauge* checkpoint_bytes_;
  prometheus::Counter* checkpoints_;
  prometheus::Counter* checkpoint_write_seconds_;
  prometheus::Gauge* checkpoint_lsn_;
  prometheus::Counter* checkpoint_failures_;
  prometheus::Gauge* dedupe_effective_horizon_;
  prometheus::Gauge* producers_;
  prometheus::Gauge* log_writable_;
  prometheus::Gauge* log_durable_lsn_;
  prometheus::Gauge* log_pending_bytes_;
  prometheus::Gauge* log_segments_;
  prometheus::Counter* log_records_;
  prometheus::Counter* log_bytes_appended_;
  prometheus::Counter* log_bytes_written_;
  prometheus::Counter* log_syncs_;
  prometheus::Counter* log_sync_seconds_;
  prometheus::Counter* log_write_errors_;
  storage::LogStats last_log_stats_{};  // tick thread only
  prometheus::Counter* history_events_;
  prometheus::Counter* history_writes_;
  prometheus::Counter* history_write_failures_;
  prometheus::Counter* history_log_reads_;
  prometheus::Counter* history_values_folded_;
  prometheus::Counter* history_sessions_evicted_;
  prometheus::Gauge* history_applied_lsn_;
  prometheus::Gauge* history_lag_records_;
  prometheus::Gauge* history_disk_bytes_;
  RollupWriterStats last_history_stats_{};  // tick thread only
  prometheus::Gauge* analyze_sessions_;
  prometheus::Counter* analyze_sessions_refused_;
  std::array<std::array<prometheus::Counter*, 2>, kMethodCount> auth_refused_{};
  prometheus::Counter* sessions_dropped_;
  prometheus::Gauge* live_segments_;
  prometheus::Counter* live_segments_opened_;
  prometheus::Counter* live_segments_refused_;
  uint64_t last_segments_opened_ = 0;   // tick thread only
  uint64_t last_segments_refused_ = 0;  // tick thread only
  agg::AggregatorStats last_stats_{};
  prometheus::Family<prometheus::Counter>* http_requests_family_;
  prometheus::Gauge* http_connections_;
  prometheus::Counter* http_connections_refused_;
  prometheus::Counter* malloc_trims_;
  prometheus::Counter* malloc_trim_seconds_;
  prometheus::Counter* malloc_trim_released_;
  prometheus::Gauge* cluster_members_;
  prometheus::Gauge* cluster_owned_;
  prometheus::Gauge* cluster_caught_up_;
  prometheus::Gauge* cluster_sequence_;
  prometheus::Family<prometheus::Gauge>* cluster_lag_family_;
  std::map<uint32_t, prometheus::Gauge*> cluster_lag_;  // tick thread only
  prometheus::Counter* cluster_events_;
  prometheus::Counter* cluster_duplicates_;
  prometheus::Counter* cluster_published_;
  prometheus::Counter* cluster_merged_;
  prometheus::Counter* cluster_stale_;
  prometheus::Counter* cluster_malformed_;
  prometheus::Counter* cluster_restarts_;
  prometheus::Counter* cluster_trim_failures_;
  prometheus::Counter* cluster_history_bytes_;
  prometheus::Gauge* cluster_segments_;
  prometheus::Gauge* cluster_segments_skipped_;
  prometheus::Counter* cluster_history_gaps_;
  prometheus::Counter* cluster_history_restored_;
  prometheus::Counter* cluster_history_unrestored_;
  prometheus::Counter* cluster_sessions_restored_;
  prometheus::Counter* cluster_history_copied_;
  prometheus::Counter* cluster_history_copy_failed_;
  prometheus::Counter* cluster_history_copy_bytes_;
  prometheus::Counter* cluster_history_exports_;
  prometheus::Counter* cluster_history_export_bytes_;
  prometheus::Counter* cluster_history_shared_reads_;
  prometheus::Counter* cluster_history_own_reads_;
  prometheus::Histogram* merge_delay_;
  cluster::ClusterStats last_cluster_{};  // tick thread only
};

}  // namespace rta::server
