#include "server/server_metrics.h"

#include <prometheus/gauge.h>

namespace rta::server {
namespace {

const char* const kCodeNames[17] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

}  // namespace

const char* MethodName(Method method) {
  switch (method) {
    case Method::kSubscribeMetrics:
      return "SubscribeMetrics";
    case Method::kReportEvent:
      return "ReportEvent";
    case Method::kReportEventBatches:
      return "ReportEventBatches";
    case Method::kAnalyzeSession:
      return "AnalyzeSession";
    case Method::kGetMetrics:
      return "GetMetrics";
    case Method::kSubscribeMetricBatches:
      return "SubscribeMetricBatches";
    case Method::kPublishEvents:
      return "PublishEvents";
    case Method::kGetUser:
      return "GetUser";
    case Method::kListUsers:
      return "ListUsers";
    case Method::kUpdateUser:
      return "UpdateUser";
    case Method::kChatSupport:
      return "ChatSupport";
    case Method::kListTokens:
      return "ListTokens";
    case Method::kServerReflectionInfo:
      return "ServerReflectionInfo";
    case Method::kQueryMetrics:
      return "QueryMetrics";
  }
  return "unknown";
}

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  prometheus::Registry& r = *registry_;

  accepted_ = &BuildCounter()
                   .Name("analytics_events_ingested_total")
                   .Help("Events accepted and counted by the aggregator")
                   .Register(r)
                   .Add({});
  backfilled_ = &BuildCounter()
                     .Name("analytics_events_backfilled_total")
                     .Help(
                         "Of the events ingested, those older than the live windows "
                         "(--max-event-age-seconds): counted by the history's rollups only")
                     .Register(r)
                     .Add({});
  duplicates_ = &BuildCounter()
                     .Name("analytics_events_duplicate_total")
                     .Help("Events whose event_id was already seen within the dedupe horizon")
                     .Register(r)
                     .Add({});
  auto& rejected = BuildCounter()
                       .Name("analytics_events_rejected_total")
                       .Help("Events refused, by reason")
                       .Register(r);
  const char* const reasons[kRejectReasonCount] = {"invalid", "too_old", "in_future", "too_large"};
  for (size_t i = 0; i < kRejectReasonCount; ++i)
    rejected_[i] = &rejected.Add({{"reason", reasons[i]}});

  auto counter = [&r](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(r).Add({});
  };
  auto gauge = [&r](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(r).Add({});
  };
  duplicate_batches_ = counter("analytics_publish_duplicate_batches_total",
                               "PublishEvents batches recognised as re-sends by their sequence");
  torn_tail_bytes_ = counter("analytics_log_torn_tail_bytes_total",
                             "Bytes of an incomplete last log record truncated at start");
  corrupt_records_skipped_ = counter("analytics_log_corrupt_records_skipped_total",
                                     "Corrupt log records skipped at start (skip_corrupt_records)");
  recovered_records_ = gauge("analytics_recovery_replayed_records",
                             "Log records replayed after the checkpoint at the last start");
  recovered_events_ = gauge("analytics_recovery_replayed_events",
                            "Events replayed from the log at the last start");
  recovery_seconds_ = gauge("analytics_recovery_seconds",
                            "Time from opening the store to the end of the log replay at start");
  checkpoint_stall_ = &BuildHistogram()
                           .Name("analytics_checkpoint_ingest_stall_seconds")
                           .Help("How long a checkpoint held ingest (its freeze)")
                           .Register(r)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1});
  checkpoint_bytes_ = gauge("analytics_checkpoint_bytes", "Size of the last checkpoint");
  checkpoints_ = counter("analytics_checkpoints_total", "Checkpoints written to the store");
  checkpoint_write_seconds_ = counter("analytics_checkpoint_write_seconds_total",
                                      "Time spent waiting for the log and writing checkpoints");
  checkpoint_lsn_ = gauge("analytics_checkpoint_lsn", "Log position the last checkpoint covers");
  checkpoint_failures_ = counter("analytics_checkpoint_failures_total",
                                 "Checkpoints the store could not write");
  dedupe_effective_horizon_ = gauge(
      "analytics_dedupe_effective_horizon_seconds",
      "How long an event id is remembered at the current accept rate: min(dedupe_horizon_seconds, "
      "table capacity / events per second)");
  producers_ = gauge("analytics_publish_producers", "PublishEvents producer ids tracked");
  log_writable_ = gauge("analytics_log_writable",
                        "1 when the event log takes writes; 0 after a write error (full disk)");
  log_durable_lsn_ = gauge("analytics_log_durable_lsn", "Last durable log record");
  log_pending_bytes_ = gauge("analytics_log_pending_bytes", "Log bytes appended, not yet written");
  log_segments_ = gauge("analytics_log_segments", "Event log segment files");
  log_records_ = counter("analytics_log_records_total", "Records appended to the event log");
  log_bytes_appended_ = counter("analytics_log_appended_bytes_total",
                                "Record payload bytes appended to the event log");
  log_bytes_written_ = counter("analytics_log_written_bytes_total",
                               "Bytes written to the event log's files (framing included)");
  log_syncs_ = counter("analytics_log_syncs_total", "fdatasync calls of the event log");
  log_sync_seconds_ = counter("analytics_log_sync_seconds_total", "Time in the log's fdatasync");
  log_write_errors_ = counter("analytics_log_write_errors_total",
                              "Failed writes or syncs of the event log (retried)");
  history_events_ = counter("analytics_history_events_total",
                            "Events folded into the history's rollups (live and backfilled)");
  history_writes_ = counter("analytics_history_writes_total",
                            "Batches of rollup cells written to the history store");
  history_write_failures_ = counter(
      "analytics_history_write_failures_total",
      "Failed writes of the history store (the records are folded again from the event log)");
  history_log_reads_ = counter(
      "analytics_history_log_reads_total",
      "Times the history's writer read records back from the event log (queue full, restart)");
  history_values_folded_ =
      counter("analytics_history_values_folded_total",
              "Dimension values the history counted as __other__ (over --history-max-values)");
  history_sessions_evicted_ =
      counter("analytics_history_sessions_evicted_total",
              "Sessions the history forgot before their 30 minutes were up, to make room (its "
              "table was full); one that goes on counts as a new session");
  history_applied_lsn_ = gauge("analytics_history_applied_lsn",
                               "Every event-log record up to this one is in the history");
  history_lag_records_ =
      gauge("analytics_history_lag_records", "Event-log records not yet in the history store");
  history_disk_bytes_ =
      gauge("analytics_history_disk_bytes", "Bytes of the history's RocksDB files (SST) on disk");

  updates_sent_ = &BuildCounter()
                       .Name("analytics_metric_updates_sent_total")
                       .Help("MetricUpdate messages written to subscribers")
                       .Register(r)
                       .Add({});
  updates_conflated_ = &BuildCounter()
                            .Name("analytics_metric_updates_conflated_total")
                            .Help(
                                "Ticks a busy subscriber missed; their changes were folded into "
                                "its next batch (latest value wins)")
                            .Register(r)
                            .Add({});
  slow_disconnects_ = &BuildCounter()
                           .Name("analytics_subscribers_disconnected_slow_total")
                           .Help("Subscribers ended because they did not read for too long")
                           .Register(r)
                           .Add({});
  http_requests_family_ = &BuildCounter()
                               .Name("analytics_http_requests_total")
                               .Help("HTTP requests answered, by route and status code")
                               .Register(r);
  http_connections_ = &BuildGauge()
                           .Name("analytics_http_connections")
                           .Help("HTTP connections open now")
                           .Register(r)
                           .Add({});
  http_connections_refused_ =
      &BuildCounter()
           .Name("analytics_http_connections_refused_total")
           .Help(
               "HTTP connections closed at once: over --http-max-connections or the limit "
               "per client address")
           .Register(r)
           .Add({});
  subscribers_ = &BuildGauge()
                      .Name("analytics_subscribers")
                      .Help("SubscribeMetrics streams open now")
                      .Register(r)
                      .Add({});
  auto& open =
      BuildGauge().Name("analytics_open_streams").Help("Calls in progress, by method").Register(r);
  rpcs_handled_family_ = &BuildCounter()
                              .Name("analytics_rpcs_handled_total")
                              .Help("RPCs completed, by method and status code")
                              .Register(r);
  auto& duration = BuildHistogram()
                       .Name("analytics_rpc_duration_seconds")
                       .Help("Time from the start of an RPC to its status, by method")
                       .Register(r);
  const prometheus::Histogram::BucketBoundaries rpc_buckets = {
      0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600};
  auto& refused = BuildCounter()
                      .Name("analytics_streams_refused_total")
                      .Help(
                          "Streaming calls refused at their start (RESOURCE_EXHAUSTED), by the "
                          "limit reached: max_streams (server) or max_streams_per_peer (peer)")
                      .Register(r);
  streams_refused_[static_cast<size_t>(StreamRefusal::kServerLimit)] =
      &refused.Add({{"limit", "server"}});
  streams_refused_[static_cast<size_t>(StreamRefusal::kPeerLimit)] =
      &refused.Add({{"limit", "peer"}});
  auto& idle = BuildCounter()
                   .Name("analytics_streams_idle_closed_total")
                   .Help(
                       "Ingest and AnalyzeSession streams ended because the client sent nothing "
                       "for stream_idle_timeout_ms, by method")
                   .Register(r);
  auto& unparseable = BuildCounter()
                          .Name("analytics_messages_unparseable_total")
                          .Help(
                              "Request messages that were not valid protobuf for their method "
                              "(the stream ended with INVALID_ARGUMENT), by method")
                          .Register(r);
  auto& auth_refused = BuildCounter()
                           .Name("analytics_auth_refused_total")
                           .Help(
                               "Calls refused by authentication, by method and code "
                               "(UNAUTHENTICATED: no, unknown, revoked or expired token; "
                               "PERMISSION_DENIED: the token's user lacks the method's role)")
                           .Register(r);
  for (size_t i = 0; i < kMethodCount; ++i) {
    const char* name = MethodName(static_cast<Method>(i));
    auth_refused_[i][0] = &auth_refused.Add({{"method", name}, {"code", "UNAUTHENTICATED"}});
    auth_refused_[i][1] = &auth_refused.Add({{"method", name}, {"code", "PERMISSION_DENIED"}});
    open_streams_[i] = &open.Add({{"method", name}});
    rpc_duration_[i] = &duration.Add({{"method", name}}, rpc_buckets);
    idle_streams_closed_[i] = &idle.Add({{"method", name}});
    unparseable_messages_[i] = &unparseable.Add({{"method", name}});
  }
  tick_duration_ =
      &BuildHistogram()
           .Name("analytics_aggregator_tick_duration_seconds")
           .Help("Time to fold ingested events into the windows and publish a snapshot")
           .Register(r)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                            0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                            0.5, 1});
  auto& signals = BuildCounter()
                      .Name("analytics_session_signals_total")
                      .Help("Signals raised by AnalyzeSession, by signal")
                      .Register(r);
  signals_[0] = &signals.Add({{"signal", "rage_click"}});
  signals_[1] = &signals.Add({{"signal", "bot_suspected"}});
  signals_[2] = &signals.Add({{"signal", "cart_abandonment_risk"}});
  folded_ = &BuildCounter()
                 .Name("analytics_dimension_values_folded_total")
                 .Help("Events whose country/device value went to __other__ (cardinality cap)")
                 .Register(r)
                 .Add({});
  dedupe_early_evictions_ =
      &BuildCounter()
           .Name("analytics_dedupe_early_evictions_total")
           .Help(
               "WARNING when rising: event ids dropped from the dedupe table inside their horizon "
               "because more distinct ids arrived within one horizon than "
               "analytics_dedupe_capacity_ids; a retry of such an id would count twice")
           .Register(r)
           .Add({});
  dedupe_capacity_ids_ =
      &BuildGauge()
           .Name("analytics_dedupe_capacity_ids")
           .Help("Distinct event ids per dedupe horizon the dedupe table holds without early "
                 "evictions (3/4 of 2^dedupe_capacity_log2)")
           .Register(r)
           .Add({});
  values_truncated_ = &BuildCounter()
                           .Name("analytics_dimension_values_truncated_total")
                           .Help("page/referrer/utm_campaign values cut to "
                                 "--max-dimension-value-bytes")
                           .Register(r)
                           .Add({});
  ranked_folded_ = &BuildCounter()
                        .Name("analytics_key_dictionary_folded_total")
                        .Help("Ranked values (page/referrer/utm_campaign) counted as __other__ "
                              "because the key dictionary was at --key-dictionary-max-bytes")
                        .Register(r)
                        .Add({});
  key_dictionary_bytes_ = &BuildGauge()
                               .Name("analytics_key_dictionary_bytes")
                               .Help("Accounted bytes of the texts of ranked values kept for "
                                     "top-k lists (bounded by --key-dictionary-max-bytes)")
                               .Register(r)
                               .Add({});
  analyze_sessions_ = &BuildGauge()
                           .Name("analytics_analyze_sessions")
                           .Help("Sessions tracked by all AnalyzeSession streams now")
                           .Register(r)
                           .Add({});
  analyze_sessions_refused_ = &BuildCounter()
                                   .Name("analytics_analyze_sessions_refused_total")
                                   .Help("AnalyzeSession actions refused (stream ended) because "
                                         "--max-analyze-sessions sessions were tracked")
                                   .Register(r)
                                   .Add({});
  sessions_dropped_ = &BuildCounter()
                           .Name("analytics_sessions_dropped_total")
                           .Help("Sessions not tracked because max_sessions was reached")
                           .Register(r)
                           .Add({});
  live_segments_ = &BuildGauge()
                        .Name("analytics_live_segments")
                        .Help("Live segments kept (subscriptions with filters; watched or idle)")
                        .Register(r)
                        .Add({});
  live_segments_opened_ = &BuildCounter()
                               .Name("analytics_live_segments_opened_total")
                               .Help("Live segments opened for a subscriber")
                               .Register(r)
                               .Add({});
  live_segments_refused_ = &BuildCounter()
                                .Name("analytics_live_segments_refused_total")
                                .Help(
                                    "Subscriptions refused (RESOURCE_EXHAUSTED) because "
                                    "--max-live-segments were kept and watched")
                                .Register(r)
                                .Add({});
  // Cluster mode (--cluster, server/cluster/cluster_node.h); zero on a single node.
  cluster_members_ = &BuildGauge()
                          .Name("analytics_cluster_members")
                          .Help("Live analytics nodes this node sees in the cluster")
                          .Register(r)
                          .Add({});
  cluster_owned_ = &BuildGauge()
                        .Name("analytics_cluster_partitions_owned")
                        .Help("Partitions this node holds the lease of and counts")
                        .Register(r)
                        .Add({});
  cluster_segments_ = &BuildGauge()
                           .Name("analytics_cluster_live_segments_counted")
                           .Help("The cluster's live segments this node's partition owners count")
                           .Register(r)
                           .Add({});
  cluster_segments_skipped_ =
      &BuildGauge()
           .Name("analytics_cluster_live_segments_skipped")
           .Help(
               "The cluster's live segments an owner here cannot count (over its 32): their "
               "subscribers miss this node's partitions")
           .Register(r)
           .Add({});
  cluster_caught_up_ = &BuildGauge()
                            .Name("analytics_cluster_view_caught_up")
                            .Help(
                                "1 once this node merged every partial published before it "
                                "started (its numbers are the cluster's)")
                            .Register(r)
                            .Add({});
  cluster_sequence_ = &BuildGauge()
                           .Name("analytics_cluster_partials_read_sequence")
                           .Help("The last sequence of the partial stream this node has read")
                           .Register(r)
                           .Add({});
  cluster_lag_family_ = &BuildGauge()
                             .Name("analytics_cluster_partition_lag_seconds")
                             .Help(
                                 "How far behind the event stream this node reads an owned "
                                 "partition: the age of the message it counted last (0 when "
                                 "it has read everything)")
                             .Register(r);
  auto cluster_counter = [&r](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(r).Add({});
  };
  cluster_events_ = cluster_counter("analytics_cluster_events_counted_total",
                                    "Events counted by this node's partition owners");
  cluster_duplicates_ =
      cluster_counter("analytics_cluster_duplicates_total",
                      "Events this node's partition owners found already counted (event_id)");
  cluster_published_ = cluster_counter("analytics_cluster_partials_published_total",
                                       "Partial records this node's owners appended");
  cluster_merged_ = cluster_counter("analytics_cluster_partials_merged_total",
                                    "Partial records merged into this node's view");
  cluster_stale_ = cluster_counter(
      "analytics_cluster_partials_stale_total",
      "Partial records from an older lease than one already merged (a former owner that had "
      "not yet noticed it lost the partition; merged, the chain keeps them exact)");
  cluster_malformed_ = cluster_counter("analytics_cluster_partials_malformed_total",
                                       "Partial-stream messages or deltas that did not decode");
  cluster_restarts_ =
      cluster_counter("analytics_cluster_owner_restarts_total",
                      "Partition owners, or this node's partial reader, that started over "
                      "(fenced by another owner, a NATS server gone; the reason is logged)");
  cluster_trim_failures_ =
      cluster_counter("analytics_cluster_trim_failures_total",
                      "Trims of a partition's event subject or partial chain that failed "
                      "(retried at the next trim; the reason is logged)");
  cluster_history_bytes_ =
      cluster_counter("analytics_cluster_history_bytes_total",
                      "Rollup bytes this node's partition owners shipped in partial records");
  cluster_history_gaps_ =
      cluster_counter("analytics_cluster_history_gap_records_total",
                      "Partial-stream records trimmed before this node's history read them "
                      "(their rollups are missing here; the gap is logged)");
  auto& takeovers =
      BuildCounter()
          .Name("analytics_cluster_history_takeovers_total")
          .Help(
              "Setups of a partition owner on this node after another owner's history flush: "
              "restored (the former owner's sessions and admitted values, from this node's "
              "history store) or unrestored (started empty: sessions in progress count "
              "again; the reason is logged)")
          .Register(r);
  cluster_history_restored_ = &takeovers.Add({{"outcome", "restored"}});
  cluster_history_unrestored_ = &takeovers.Add({{"outcome", "unrestored"}});
  cluster_sessions_restored_ =
      cluster_counter("analytics_cluster_history_sessions_restored_total",
                      "Sessions in progress this node's partition owners restored at takeovers");
  auto& copies =
      BuildCounter()
          .Name("analytics_cluster_history_copies_total")
          .Help(
              "Starts of this node that found the partial stream trimmed past its history store's "
              "position and copied a peer's store (copied), or could not (failed: reading on "
              "with a gap; the reason is logged)")
          .Register(r);
  cluster_history_copied_ = &copies.Add({{"outcome", "copied"}});
  cluster_history_copy_failed_ = &copies.Add({{"outcome", "failed"}});
  cluster_history_copy_bytes_ = cluster_counter("analytics_cluster_history_copy_bytes_total",
                                                "Bytes of a peer's history store copied here");
  cluster_history_exports_ =
      cluster_counter("analytics_cluster_history_exports_total",
                      "Copies of this node's history store opened for other nodes");
  cluster_history_export_bytes_ =
      cluster_counter("analytics_cluster_history_export_bytes_total",
                      "Bytes of this node's history store sent to other nodes");
  auto& history_reads =
      BuildCounter()
          .Name("analytics_cluster_history_reads_total")
          .Help(
              "Partial-stream messages this node's history applied: taken from the live view's "
              "reads (merger: the stream read once) or read by the history itself (own: behind "
              "the view, after a start or a gap)")
          .Register(r);
  cluster_history_shared_reads_ = &history_reads.Add({{"source", "merger"}});
  cluster_history_own_reads_ = &history_reads.Add({{"source", "own"}});
  merge_delay_ = &BuildHistogram()
                      .Name("analytics_cluster_merge_delay_seconds")
                      .Help("From a partial's cut at its owner to its merge into this node's view")
                      .Register(r)
                      .Add({}, prometheus::Histogram::BucketBoundaries{
                                   0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  malloc_trims_ = &BuildCounter()
                       .Name("analytics_malloc_trims_total")
                       .Help("Times freed heap memory was returned to the OS (malloc_trim)")
                       .Register(r)
                       .Add({});
  malloc_trim_seconds_ = &BuildCounter()
                              .Name("analytics_malloc_trim_seconds_total")
                              .Help("Time the tick thread spent in malloc_trim")
                              .Register(r)
                              .Add({});
  malloc_trim_released_ = &BuildCounter()
                               .Name("analytics_malloc_trim_released_bytes_total")
                               .Help("Resident memory released by malloc_trim (RSS before - after)")
                               .Register(r)
                               .Add({});
  BuildGauge()
      .Name("analytics_build_info")
      .Help("Build information; the value is always 1")
      .Register(r)
      .Add({{"version", RTA_VERSION}, {"grpc", RTA_GRPC_VERSION}})
      .Set(1);
}

void ServerMetrics::AddIngested(uint64_t accepted, uint64_t duplicates, uint64_t backfilled) {
  if (accepted > 0) accepted_->Increment(static_cast<double>(accepted));
  if (backfilled > 0) backfilled_->Increment(static_cast<double>(backfilled));
  if (duplicates > 0) duplicates_->Increment(static_cast<double>(duplicates));
}

void ServerMetrics::AddRejected(RejectReason reason, uint64_t count) {
  if (count > 0) rejected_[static_cast<size_t>(reason)]->Increment(static_cast<double>(count));
}

void ServerMetrics::RpcHandled(Method method, grpc::StatusCode code, double seconds) {
  const size_t m = static_cast<size_t>(method);
  const size_t c = static_cast<size_t>(code) < 17 ? static_cast<size_t>(code) : 2;  // UNKNOWN
  prometheus::Counter* counter = rpcs_handled_[m][c].load(std::memory_order_acquire);
  if (counter == nullptr) {
    // Family::Add is idempotent for equal labels, so a race here only repeats the lookup.
    counter = &rpcs_handled_family_->Add({{"method", MethodName(method)}, {"code", kCodeNames[c]}});
    rpcs_handled_[m][c].store(counter, std::memory_order_release);
  }
  counter->Increment();
  rpc_duration_[m]->Observe(seconds);
}

void ServerMetrics::SessionSignal(agg::SessionSignal signal) {
  signals_[static_cast<size_t>(signal)]->Increment();
}

void ServerMetrics::UpdateAggregatorStats(const agg::AggregatorStats& stats) {
  // Called from the tick thread only, so last_stats_ needs no synchronisation.
  auto add = [](prometheus::Counter* counter, uint64_t now, uint64_t before) {
    if (now > before) counter->Increment(static_cast<double>(now - before));
  };
  add(folded_, stats.dimension_values_folded, last_stats_.dimension_values_folded);
  add(dedupe_early_evictions_, stats.dedupe_early_evictions, last_stats_.dedupe_early_evictions);
  add(values_truncated_, stats.dimension_values_truncated, last_stats_.dimension_values_truncated);
  add(ranked_folded_, stats.ranked_values_folded, last_stats_.ranked_values_folded);
  dedupe_capacity_ids_->Set(static_cast<double>(stats.dedupe_capacity_ids));
  key_dictionary_bytes_->Set(static_cast<double>(stats.key_dictionary_bytes));
  add(sessions_dropped_, stats.sessions_dropped, last_stats_.sessions_dropped);
  last_stats_ = stats;
}

void ServerMetrics::UpdateCluster(const cluster::ClusterStats& stats) {
  cluster_members_->Set(stats.members);
  cluster_owned_->Set(static_cast<double>(stats.owned.size()));
  cluster_segments_->Set(static_cast<double>(stats.segments_counted));
  cluster_segments_skipped_->Set(static_cast<double>(stats.segments_skipped));
  cluster_caught_up_->Set(stats.caught_up ? 1 : 0);
  cluster_sequence_->Set(static_cast<double>(stats.partials_sequence));
  for (auto it = cluster_lag_.begin(); it != cluster_lag_.end();) {
    if (stats.lag_ms.count(it->first) == 0) {
      cluster_lag_family_->Remove(it->second);
      it = cluster_lag_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [partition, lag_ms] : stats.lag_ms) {
    prometheus::Gauge*& gauge = cluster_lag_[partition];
    if (gauge == nullptr)
      gauge = &cluster_lag_family_->Add({{"partition", std::to_string(partition)}});
    gauge->Set(static_cast<double>(lag_ms) / 1000.0);
  }
  auto add = [](prometheus::Counter* counter, uint64_t now, uint64_t last) {
    if (now > last) counter->Increment(static_cast<double>(now - last));
  };
  add(cluster_events_, stats.events_counted, last_cluster_.events_counted);
  add(cluster_duplicates_, stats.duplicates, last_cluster_.duplicates);
  add(cluster_published_, stats.partials_published, last_cluster_.partials_published);
  add(cluster_merged_, stats.partials_received, last_cluster_.partials_received);
  add(cluster_stale_, stats.partials_stale, last_cluster_.partials_stale);
  add(cluster_malformed_, stats.partials_malformed, last_cluster_.partials_malformed);
  add(cluster_restarts_, stats.owner_restarts + stats.merger_restarts,
      last_cluster_.owner_restarts + last_cluster_.merger_restarts);
  add(cluster_trim_failures_, stats.trim_failures, last_cluster_.trim_failures);
  add(cluster_history_bytes_, stats.history_bytes, last_cluster_.history_bytes);
  add(cluster_history_gaps_, stats.history.gap_records, last_cluster_.history.gap_records);
  add(cluster_history_restored_, stats.history_restored, last_cluster_.history_restored);
  add(cluster_history_unrestored_, stats.history_unrestored, last_cluster_.history_unrestored);
  add(cluster_sessions_restored_, stats.sessions_restored, last_cluster_.sessions_restored);
  add(cluster_history_copied_, stats.history.copies, last_cluster_.history.copies);
  add(cluster_history_copy_failed_, stats.history.copy_failures,
      last_cluster_.history.copy_failures);
  add(cluster_history_copy_bytes_, stats.history.copy_bytes, last_cluster_.history.copy_bytes);
  add(cluster_history_exports_, stats.history.exports, last_cluster_.history.exports);
  add(cluster_history_export_bytes_, stats.history.export_bytes,
      last_cluster_.history.export_bytes);
  add(cluster_history_shared_reads_, stats.history.shared_reads,
      last_cluster_.history.shared_reads);
  add(cluster_history_own_reads_, stats.history.own_reads, last_cluster_.history.own_reads);
  last_cluster_ = stats;
}

void ServerMetrics::UpdateLiveSegments(size_t kept, uint64_t opened, uint64_t refused) {
  // Tick thread only.
  live_segments_->Set(static_cast<double>(kept));
  if (opened > last_segments_opened_) {
    live_segments_opened_->Increment(static_cast<double>(opened - last_segments_opened_));
  }
  if (refused > last_segments_refused_) {
    live_segments_refused_->Increment(static_cast<double>(refused - last_segments_refused_));
  }
  last_segments_opened_ = opened;
  last_segments_refused_ = refused;
}

void ServerMetrics::UpdateLogStats(const storage::LogStats& stats,
                                   const storage::LogHealth& health, uint64_t durable_lsn) {
  // Tick thread only, so last_log_stats_ needs no synchronisation.
  auto add = [](prometheus::Counter* counter, double now, double before) {
    if (now > before) counter->Increment(now - before);
  };
  log_writable_->Set(health.writable ? 1 : 0);
  log_durable_lsn_->Set(static_cast<double>(durable_lsn));
  log_pending_bytes_->Set(static_cast<double>(stats.pending_bytes));
  log_segments_->Set(static_cast<double>(stats.segments));
  add(log_records_, static_cast<double>(stats.records_appended), last_log_stats_.records_appended);
  add(log_bytes_appended_, stats.bytes_appended, last_log_stats_.bytes_appended);
  add(log_bytes_written_, stats.bytes_written, last_log_stats_.bytes_written);
  add(log_syncs_, stats.syncs, last_log_stats_.syncs);
  add(log_sync_seconds_, static_cast<double>(stats.sync_nanos_sum) / 1e9,
      static_cast<double>(last_log_stats_.sync_nanos_sum) / 1e9);
  add(log_write_errors_, stats.write_errors, last_log_stats_.write_errors);
  last_log_stats_ = stats;
}

void ServerMetrics::UpdateHistoryStats(const RollupWriterStats& stats, uint64_t disk_bytes,
                                       uint64_t last_lsn) {
  // Tick thread only, so last_history_stats_ needs no synchronisation.
  auto add = [](prometheus::Counter* counter, uint64_t now, uint64_t before) {
    if (now > before) counter->Increment(static_cast<double>(now - before));
  };
  add(history_events_, stats.events_folded, last_history_stats_.events_folded);
  add(history_writes_, stats.writes, last_history_stats_.writes);
  add(history_write_failures_, stats.write_failures, last_history_stats_.write_failures);
  add(history_log_reads_, stats.log_reads, last_history_stats_.log_reads);
  add(history_values_folded_, stats.values_folded, last_history_stats_.values_folded);
  add(history_sessions_evicted_, stats.sessions_evicted, last_history_stats_.sessions_evicted);
  history_applied_lsn_->Set(static_cast<double>(stats.applied_lsn));
  history_lag_records_->Set(
      static_cast<double>(last_lsn > stats.applied_lsn ? last_lsn - stats.applied_lsn : 0));
  history_disk_bytes_->Set(static_cast<double>(disk_bytes));
  last_history_stats_ = stats;
}

void ServerMetrics::AddHttpRequest(const char* route, unsigned status) {
  // Family::Add finds the existing series under the family's mutex: one lookup per request,
  // small beside the request's own parsing.
  http_requests_family_->Add({{"route", route}, {"code", std::to_string(status)}}).Increment();
}

}  // namespace rta::server
