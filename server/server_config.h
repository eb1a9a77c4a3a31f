#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/aggregator/aggregator.h"

namespace rta::server {

inline constexpr char kDefaultDataDir[] = "analytics-data";
inline constexpr char kDefaultHttpListen[] = "127.0.0.1:8080";

// Everything the server can be told at start. Flags and the JSON config file use the same keys
// (flag --tick-ms is key "tick_ms"); see ParseServerConfig() and `analytics_server --help`.
struct ServerConfig {
  // Loopback by default: exposing the ports is a decision (see `insecure` and README "Access").
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";  // "" disables the Prometheus endpoint
  uint32_t workers = 0;                         // completion queues/threads; 0 = cores
  uint32_t tick_ms = 1000;                      // aggregator tick, >= 50
  // Early ticks for push_on_change subscribers come at most this often, so that heavy ingest
  // cannot keep the tick thread busy all the time (each early tick is a full snapshot).
  uint32_t push_min_interval_ms = 2;
  // Limits.
  uint32_t max_subscribers = 20'000;
  // Live segments (subscriptions with filters) kept at once, each a set of windows fed by the
  // events that match it (at most agg::kMaxLiveSegments / 2, so that a closing one's id is never
  // needed); one that no subscriber has watched for live_segment_idle_s is freed.
  uint32_t max_live_segments = 16;
  uint32_t live_segment_idle_s = 60;
  uint32_t max_streams = 50'000;  // open streaming calls of all kinds
  // Open streaming calls of one client address, so that one client cannot take all max_streams.
  uint32_t max_streams_per_peer = 2'000;
  // An ingest or AnalyzeSession stream that sends nothing for this long is ended
  // (DEADLINE_EXCEEDED), so that idle or abandoned streams do not hold their slots.
  uint32_t stream_idle_timeout_ms = 300'000;
  uint32_t max_concurrent_streams_per_connection = 1'000;
  uint32_t max_message_bytes = 4 * 1024 * 1024;
  uint32_t max_event_bytes = 16 * 1024;
  uint32_t max_event_properties = 64;
  uint32_t max_batch_events = 10'000;
  uint32_t max_sessions_per_analyze_stream = 10'000;
  uint32_t max_invalid_actions_per_analyze_stream = 100;  // then INVALID_ARGUMENT ends it
  // Sessions tracked by all AnalyzeSession streams together (each costs about 1-2 KiB); an
  // action that would start one more ends its stream with RESOURCE_EXHAUSTED.
  uint32_t max_analyze_sessions = 100'000;
  uint64_t memory_quota_bytes = 1ull << 30;               // grpc ResourceQuota
  uint32_t shutdown_grace_ms = 5'000;                     // open streams get this long to finish
  uint32_t slow_subscriber_timeout_ms = 30'000;  // a write pending this long ends the stream
  uint32_t pending_requests_per_method = 0;      // pre-posted requests per queue; 0 = default
  // glibc keeps freed memory in its arenas; every this often the tick thread hands the free
  // pages back to the kernel with malloc_trim(0), so RSS falls after a load (0 = never).
  uint32_t malloc_trim_interval_ms = 10'000;
  // The windows a subscription or GetMetrics with an empty `windows` list gets: 1m, 5m, 1h,
  // total or all (metric_filter.h, ParseDefaultWindows).
  std::string default_window = "total";
  // Durability. data_dir holds the event log (log/) and the checkpoint store (store/); ""
  // keeps everything in memory only (a restart loses every number).
  // The command line's default is kDefaultDataDir; a ServerConfig built in code (tests, the
  // benchmarks) is memory-only unless it says otherwise.
  std::string data_dir = "";
  std::string fsync = "always";  // always | interval | never (see --help)
  uint32_t fsync_interval_ms = 10;
  uint64_t log_segment_bytes = 64ull << 20;
  uint64_t log_max_pending_bytes = 256ull << 20;  // written-but-not-synced bound, then UNAVAILABLE
  uint32_t skip_corrupt_records = 0;  // 1: start past corrupt log records (counted), not fail
  uint32_t checkpoint_interval_s = 60;  // also one at shutdown
  // Cluster mode (issue 16, docs/design/cluster.md, server/cluster/cluster_node.h): several
  // nodes over a NATS JetStream cluster. Ingest on any node is acknowledged once stored in the
  // event stream (cluster_replicas copies); each of cluster_partitions partitions is counted by
  // the node holding its lease, which publishes partial deltas every cluster_exchange_ms; every
  // node merges all of them into the numbers it serves. "" = one node on its own (the default).
  std::string cluster = "";       // nats://HOST:PORT,... (any of the cluster's servers)
  std::string cluster_node = "";  // this node's name, unique in the cluster; "" = the host name
  std::string cluster_stream = "RTA_EVENTS";
  uint32_t cluster_replicas = 3;
  uint32_t cluster_partitions = 16;     // fixed when the cluster first starts
  uint32_t cluster_lease_ms = 6000;     // a dead node's partitions move after at most this
  uint32_t cluster_exchange_ms = 1000;  // partial deltas per partition, at most this often
  // History (rollup_writer.h; with a data_dir only): rollups kept this many days of event time
  // per resolution. Events older than the live windows and within retention_day_days are
  // accepted into the history (backfill).
  uint32_t retention_minute_days = 7;
  uint32_t retention_hour_days = 90;
  uint32_t retention_day_days = 730;
  uint32_t history_flush_ms = 2000;    // how often new rollup cells are written
  uint32_t history_max_values = 1000;  // distinct values kept per dimension, then __other__
  uint32_t history_segment_precision = 12;  // HyperLogLog precision of a segment's visitors
  uint32_t history_minute_precision = 14;   // ... of the whole traffic's minute cells
  // PublishEvents producers: forgotten after this long without a batch; at most this many.
  uint32_t producer_idle_expiry_s = 7 * 24 * 3600;
  uint64_t max_producers = 1'000'000;
  // Server-side window of a PublishEvents stream: batches read but not yet acknowledged; the
  // stream stops reading beyond it (flow control back to the client).
  uint32_t publish_window_batches = 64;
  // Access (server/auth). auth: auto (tokens required once a user exists: after --init),
  // required, or off. insecure: 1 lets the server listen beyond loopback without TLS or
  // without authentication (refused otherwise; logged as a warning).
  std::string auth = "auto";
  uint32_t insecure = 0;
  // 1: at start, when no user exists yet (the cluster's, in cluster mode), create the first
  // admin and its token as --init does (data_dir/admin.token), then serve: tokens are required
  // from the first start, without a separate step. Once a user exists it does nothing.
  uint32_t init_admin = 0;
  // TLS (auth/tls_files.h): PEM files; a client CA makes it mutual TLS. Reloaded on SIGHUP.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Per API token (auth/token_limits.h); 0 = unlimited.
  uint32_t token_events_per_second = 0;
  uint32_t token_max_streams = 5'000;
  uint32_t token_max_subscriptions = 5'000;
  // HTTP front end (server/http): POST /v1/events for browsers and anything without a gRPC
  // stub, GET /healthz. "" disables it; the command line's default is kDefaultHttpListen (like
  // data_dir, a ServerConfig built in code has none unless it says so).
  std::string http_listen = "";
  uint32_t http_threads = 1;
  // CORS: origins (scheme://host[:port], comma-separated) whose pages may post events; "*" any.
  // A request with an Origin header not listed is refused (403) even where the browser would
  // not have asked first (text/plain bodies, sendBeacon).
  std::string http_allowed_origins = "";
  // Site keys (comma-separated) that let a page report events without an API token while
  // tokens are required: write-only, limited per key. Public by nature (they are in the page).
  std::string http_site_keys = "";
  uint32_t http_max_connections = 1'000;
  uint32_t http_max_connections_per_address = 100;
  uint32_t http_max_body_bytes = 1024 * 1024;
  // A request must arrive whole (headers and body) within this long of the connection's previous
  // response or its opening; then the connection is closed (slow clients, slow-loris).
  uint32_t http_request_timeout_ms = 10'000;
  uint32_t http_events_per_second_per_address = 1'000;  // 0 = unlimited
  uint32_t http_events_per_second_per_site = 0;         // per site key; 0 = unlimited
  agg::AggregatorConfig aggregator;
};

// --cluster's servers, one per comma-separated item.
inline std::vector<std::string> ClusterServers(const ServerConfig& config) {
  std::vector<std::string> servers;
  size_t start = 0;
  while (start <= config.cluster.size() && !config.cluster.empty()) {
    const size_t comma = config.cluster.find(',', start);
    const size_t end = comma == std::string::npos ? config.cluster.size() : comma;
    if (end > start) servers.push_back(config.cluster.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return servers;
}

}  // namespace rta::server
