#include "server/config_parser.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <variant>

#include "server/aggregator/dedupe_table.h"
#include "server/http/origin_policy.h"
#include "server/metric_filter.h"

namespace rta::server {
namespace {

// One setting: its key (JSON key; the flag is --key with '-' for '_'), where it lives, and help.
struct Setting {
  const char* key;
  std::variant<std::string*, uint32_t*, uint64_t*, int64_t*> target;
  const char* help;
};

std::vector<Setting> Settings(ServerConfig& c) {
  agg::AggregatorConfig& a = c.aggregator;
  return {
      {"listen", &c.listen,
       "gRPC listen address HOST:PORT (HOST: IPv4, [IPv6] or a name; port 0 picks a free port)"},
      {"metrics_listen", &c.metrics_listen,
       "Prometheus /metrics listen address HOST:PORT (empty disables it)"},
      {"http_listen", &c.http_listen,
       "HTTP listen address HOST:PORT for POST /v1/events (JSON events from browsers and "
       "scripts) and GET /healthz (empty disables it)"},
      {"http_threads", &c.http_threads, "threads serving the HTTP port"},
      {"http_allowed_origins", &c.http_allowed_origins,
       "origins (https://shop.example,...) whose pages may post events to the HTTP port, or *; "
       "a request from any other origin is refused"},
      {"http_site_keys", &c.http_site_keys,
       "comma-separated site keys that let web pages report events (?site=KEY) without an API "
       "token when tokens are required; write-only"},
      {"http_max_connections", &c.http_max_connections, "HTTP connections open at once"},
      {"http_max_connections_per_address", &c.http_max_connections_per_address,
       "HTTP connections one client address may hold open"},
      {"http_max_body_bytes", &c.http_max_body_bytes, "largest HTTP request body, bytes"},
      {"http_request_timeout_ms", &c.http_request_timeout_ms,
       "an HTTP request must arrive whole within this long, or its connection is closed, ms"},
      {"http_events_per_second_per_address", &c.http_events_per_second_per_address,
       "events per second one client address may post over HTTP (0 = unlimited)"},
      {"http_events_per_second_per_site", &c.http_events_per_second_per_site,
       "events per second one site key may post over HTTP (0 = unlimited)"},
      {"workers", &c.workers, "completion queues, one thread each (0 = number of cores)"},
      {"tick_ms", &c.tick_ms, "aggregator tick and subscriber update period, ms (>= 50)"},
      {"push_min_interval_ms", &c.push_min_interval_ms,
       "least time between two snapshots published early for push_on_change subscribers, ms"},
      {"max_subscribers", &c.max_subscribers, "SubscribeMetrics streams open at once"},
      {"max_live_segments", &c.max_live_segments,
       "live segments (subscriptions with filters) kept at once, each counting the events that "
       "match it; beyond them a new segment is RESOURCE_EXHAUSTED (0 = none, <= 32)"},
      {"live_segment_idle_s", &c.live_segment_idle_s,
       "a live segment no subscriber has watched for this long is freed, s"},
      {"max_streams", &c.max_streams, "streaming calls of all kinds open at once"},
      {"max_streams_per_peer", &c.max_streams_per_peer,
       "streaming calls one client address may hold open at once"},
      {"stream_idle_timeout_ms", &c.stream_idle_timeout_ms,
       "an ingest or AnalyzeSession stream that sends nothing this long is ended, ms"},
      {"max_concurrent_streams_per_connection", &c.max_concurrent_streams_per_connection,
       "HTTP/2 concurrent streams one connection may open"},
      {"max_message_bytes", &c.max_message_bytes, "largest gRPC message accepted, bytes"},
      {"max_event_bytes", &c.max_event_bytes, "largest single event (serialized), bytes"},
      {"max_event_properties", &c.max_event_properties, "properties one event may carry"},
      {"max_batch_events", &c.max_batch_events, "events one EventBatch may carry"},
      {"max_sessions_per_analyze_stream", &c.max_sessions_per_analyze_stream,
       "sessions one AnalyzeSession stream may track"},
      {"max_invalid_actions_per_analyze_stream", &c.max_invalid_actions_per_analyze_stream,
       "invalid actions answered with an error before the stream ends with INVALID_ARGUMENT"},
      {"max_analyze_sessions", &c.max_analyze_sessions,
       "sessions all AnalyzeSession streams together may track (<= 10000000)"},
      {"memory_quota_bytes", &c.memory_quota_bytes, "gRPC ResourceQuota for transport buffers"},
      {"shutdown_grace_ms", &c.shutdown_grace_ms,
       "on SIGINT/SIGTERM, how long open streams get to finish, ms"},
      {"slow_subscriber_timeout_ms", &c.slow_subscriber_timeout_ms,
       "a subscriber that has not taken a write for this long is disconnected, ms"},
      {"pending_requests_per_method", &c.pending_requests_per_method,
       "requests pre-posted per method and queue (0 = automatic)"},
      {"default_window", &c.default_window,
       "the window a subscription or GetMetrics that lists no windows gets: 1m, 5m, 1h, total, "
       "or all (every window: four values per metric)"},
      {"malloc_trim_interval_ms", &c.malloc_trim_interval_ms,
       "how often freed heap memory is returned to the OS with malloc_trim, ms (0 = never)"},
      {"data_dir", &c.data_dir,
       "directory of the event log (log/) and checkpoints (store/); \"\" = memory only: a "
       "restart loses every number and acknowledgements are not durable"},
      {"fsync", &c.fsync,
       "always: sync the log before every acknowledgement (group commit); interval: sync every "
       "--fsync-interval-ms, acknowledgements wait for it; never: acknowledge once written to "
       "the OS (a machine crash can lose acknowledged events, a process crash cannot)"},
      {"fsync_interval_ms", &c.fsync_interval_ms,
       "the log's sync period with --fsync interval, ms"},
      {"log_segment_bytes", &c.log_segment_bytes, "event log segment file size before rotation"},
      {"log_max_pending_bytes", &c.log_max_pending_bytes,
       "log bytes accepted but not yet written; beyond it ingest gets UNAVAILABLE"},
      {"cluster", &c.cluster,
       "NATS servers (nats://HOST:PORT,...) of a JetStream cluster: this node joins the "
       "analytics nodes on it (shared ingest, partitions, one global view; needs --data-dir for "
       "users and tokens); \"\" = one node on its own"},
      {"cluster_node", &c.cluster_node,
       "this node's name, unique in the cluster (A-Z a-z 0-9 _ -; \"\" = the host name)"},
      {"cluster_stream", &c.cluster_stream,
       "the JetStream stream of the events (created if missing)"},
      {"cluster_replicas", &c.cluster_replicas,
       "replicas of the streams and buckets when this node creates them (1-5; an "
       "acknowledgement waits for a quorum of them)"},
      {"cluster_partitions", &c.cluster_partitions,
       "partitions of the events (by session), each counted by one node; fixed when the "
       "cluster first starts (1-1024)"},
      {"cluster_lease_ms", &c.cluster_lease_ms,
       "a partition lease's lifetime: a stopped node's partitions move to others after at most "
       "this (1000-60000)"},
      {"cluster_exchange_ms", &c.cluster_exchange_ms,
       "how often a partition's owner publishes its partial delta (100-10000): the delay before "
       "an event shows on every node"},
      {"skip_corrupt_records", &c.skip_corrupt_records,
       "1: at start, skip (and count) corrupt records in the middle of the log instead of "
       "refusing to start; their events are lost"},
      {"auth", &c.auth,
       "auto: calls need an API token once the data directory has a user (analytics_server "
       "--init creates the first); required: always; off: never (loopback only)"},
      {"init_admin", &c.init_admin,
       "1: at start, if there is no user yet (the cluster's in cluster mode), create the admin "
       "and its token as --init does (<data-dir>/admin.token), then serve with tokens required; "
       "with a user already, nothing"},
      {"insecure", &c.insecure,
       "1: allow listening beyond loopback without TLS or without authentication (a warning "
       "is logged); 0 refuses to start instead"},
      {"tls_cert", &c.tls_cert,
       "PEM certificate chain: serve gRPC over TLS (with --tls-key; reloaded on SIGHUP)"},
      {"tls_key", &c.tls_key, "PEM private key of --tls-cert"},
      {"tls_client_ca", &c.tls_client_ca,
       "PEM roots: mutual TLS, a client must present a certificate they signed"},
      {"token_events_per_second", &c.token_events_per_second,
       "events one API token may report per second, over all its streams (0 = unlimited; "
       "beyond it RESOURCE_EXHAUSTED says when to retry)"},
      {"token_max_streams", &c.token_max_streams,
       "streaming calls one API token may hold open at once (0 = unlimited)"},
      {"token_max_subscriptions", &c.token_max_subscriptions,
       "subscriptions one API token may hold open at once (0 = unlimited)"},
      {"checkpoint_interval_s", &c.checkpoint_interval_s,
       "seconds between checkpoints of the aggregator's state (and one at shutdown); the log "
       "before a checkpoint is deleted"},
      {"retention_minute_days", &c.retention_minute_days,
       "days of per-minute history kept (totals only)"},
      {"retention_hour_days", &c.retention_hour_days,
       "days of per-hour history kept (totals and every single-dimension segment)"},
      {"retention_day_days", &c.retention_day_days,
       "days of per-day history kept; events up to this old are accepted into the history "
       "(backfill), older ones are refused as too old"},
      {"history_flush_ms", &c.history_flush_ms,
       "how often new history (rollup cells) is written to disk, ms; range queries see it then "
       "(with --cluster: how often each partition's owner ships its rollup cells to every node)"},
      {"history_max_values", &c.history_max_values,
       "distinct values the history keeps per dimension (page, referrer, ...); later new ones "
       "count as __other__"},
      {"history_segment_precision", &c.history_segment_precision,
       "HyperLogLog precision of a segment's unique visitors in the history, 10-14: 12 is 4 KiB "
       "and 1.6% standard error per cell, each step down halves the bytes and multiplies the "
       "error by 1.41 (the whole traffic's cells keep 14)"},
      {"history_minute_precision", &c.history_minute_precision,
       "HyperLogLog precision of the whole traffic's unique visitors in the history's minute "
       "cells, 10-14: 14 is 16 KiB and 0.81% standard error per cell, 12 is 4 KiB and 1.6% "
       "(hour and day cells keep 14); with --history-segment-precision 10 and this at 12, 30 "
       "days at 1,000 events/s take about 180 MB instead of 390 (bench/README, \"History\")"},
      {"producer_idle_expiry_s", &c.producer_idle_expiry_s,
       "a PublishEvents producer id idle this long is forgotten (a re-send after that counts by "
       "event id only)"},
      {"max_producers", &c.max_producers, "PublishEvents producer ids tracked at once"},
      {"publish_window_batches", &c.publish_window_batches,
       "unacknowledged batches one PublishEvents stream may have; it stops reading beyond"},
      {"dedupe_horizon_seconds", &a.dedupe_horizon_seconds,
       "an event_id seen again within this many seconds counts once"},
      {"dedupe_capacity_log2", &a.dedupe_capacity_log2,
       "log2 of the de-duplication table's slots (8 bytes each); it holds 3/4 of them in ids "
       "per horizon (default 2^22: 32 MiB, 3145728 ids; see the capacity line below)"},
      {"max_event_age_seconds", &a.max_event_age_seconds, "older events are rejected"},
      {"max_event_future_seconds", &a.max_event_future_seconds,
       "events further in the future are rejected"},
      {"dimension_cardinality_cap", &a.dimension_cardinality_cap,
       "distinct country/device values kept before folding into __other__"},
      {"top_k_capacity", &a.top_k_capacity, "Space-Saving counters per top-k summary"},
      {"max_sessions", &a.max_sessions, "sessions tracked at once for session metrics"},
      {"active_session_seconds", &a.active_session_seconds,
       "a session is active if it had an event within this many seconds"},
      {"max_dimension_value_bytes", &a.max_dimension_value_bytes,
       "page/referrer/utm_campaign values are cut to this many bytes (UTF-8 safe; 16..2048)"},
      {"key_dictionary_max_bytes", &a.key_dictionary_max_bytes,
       "bytes for the texts of ranked values; new ones beyond count as __other__ (1 MiB..1 GiB)"},
  };
}

std::string FlagName(const char* key) {
  std::string flag = std::string("--") + key;
  for (char& ch : flag) {
    if (ch == '_') ch = '-';
  }
  return flag;
}

template <typename Int>
bool ParseInteger(std::string_view text, Int* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

bool AssignFromString(const Setting& setting, std::string_view value, std::string* error) {
  return std::visit(
      [&](auto* target) {
        using T = std::remove_pointer_t<decltype(target)>;
        if constexpr (std::is_same_v<T, std::string>) {
          *target = std::string(value);
          return true;
        } else {
          if (ParseInteger(value, target)) return true;
          *error = FlagName(setting.key) + ": '" + std::string(value) + "' is not " +
                   (std::is_signed_v<T> ? "an integer" : "a non-negative integer") + " in range";
          return false;
        }
      },
      setting.target);
}

bool AssignFromJson(const Setting& setting, const nlohmann::json& value, std::string* error) {
  return std::visit(
      [&](auto* target) {
        using T = std::remove_pointer_t<decltype(target)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (!value.is_string()) {
            *error = std::string("config key '") + setting.key + "': expected a string";
            return false;
          }
          *target = value.get<std::string>();
          return true;
        } else {
          const bool in_range =
              value.is_number_integer() &&
              (value.is_number_unsigned()
                   ? value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                   : value.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                         (value.get<int64_t>() < 0 ||
                          static_cast<uint64_t>(value.get<int64_t>()) <=
                              static_cast<uint64_t>(std::numeric_limits<T>::max())));
          if (!in_range) {
            *error = std::string("config key '") + setting.key + "': expected " +
                     (std::is_signed_v<T> ? "an integer" : "a non-negative integer") +
                     " in range, got " + value.dump();
            return false;
          }
          *target = static_cast<T>(value.is_number_unsigned() ? value.get<uint64_t>()
                                                              : value.get<int64_t>());
          return true;
        }
      },
      setting.target);
}

// The one place JSON is parsed: exceptions become a message with the position and reason.
bool LoadConfigFile(const std::string& path, ServerConfig* config, std::string* error) {
  // A directory opens as an ifstream on Linux, and its first read throws from the stream
  // buffer; nlohmann's stream adapter reads the buffer directly, so that exception would escape
  // (found by config_flags_fuzzer with `--config=.`). Hence the check, and the catch below.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    *error = "config file '" + path + "': is a directory";
    return false;
  }
  std::ifstream in(path);
  if (!in) {
    *error = "config file '" + path + "': cannot open";
    return false;
  }
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    *error = "config file '" + path + "': " + e.what();
    return false;
  } catch (const std::exception& e) {  // a read error (std::ios_base::failure)
    *error = "config file '" + path + "': cannot read: " + e.what();
    return false;
  }
  if (!doc.is_object()) {
    *error = "config file '" + path + "': expected a JSON object of settings";
    return false;
  }
  const std::vector<Setting> settings = Settings(*config);
  for (const auto& [key, value] : doc.items()) {
    const Setting* found = nullptr;
    for (const Setting& s : settings) {
      if (key == s.key) found = &s;
    }
    if (found == nullptr) {
      *error = "config file '" + path + "': unknown key '" + key + "'";
      return false;
    }
    if (!AssignFromJson(*found, value, error)) {
      *error = "config file '" + path + "': " + *error;
      return false;
    }
  }
  return true;
}

// The flags that take no value, each with what it sets.
struct Switch {
  std::string_view name;
  bool CommandLine::*field;
};
constexpr Switch kSwitches[] = {{"--help", &CommandLine::show_help},
                                {"-h", &CommandLine::show_help},
                                {"--version", &CommandLine::show_version},
                                {"--init", &CommandLine::init}};

const Switch* FindSwitch(std::string_view arg) {
  for (const Switch& candidate : kSwitches) {
    if (candidate.name == arg) return &candidate;
  }
  return nullptr;
}

}  // namespace

bool IsSwitch(std::string_view arg) { return FindSwitch(arg) != nullptr; }

bool ParseCommandLine(const std::vector<std::string>& args, CommandLine* out, std::string* error) {
  // Split "--key=value" and "--key value" into pairs first, so --config can be applied before
  // the other flags whatever its position.
  std::vector<std::pair<std::string, std::string>> flags;
  out->config.data_dir = kDefaultDataDir;
  out->config.http_listen = kDefaultHttpListen;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (const Switch* flag = FindSwitch(arg)) {
      out->*flag->field = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument '" + arg + "' (see --help)";
      return false;
    }
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      flags.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      flags.emplace_back(arg, args[++i]);
    } else {
      *error = arg + ": missing value";
      return false;
    }
  }
  for (const auto& [flag, value] : flags) {
    if (flag == "--config" && !LoadConfigFile(value, &out->config, error)) return false;
  }
  const std::vector<Setting> settings = Settings(out->config);
  for (const auto& [flag, value] : flags) {
    if (flag == "--config") continue;
    const Setting* found = nullptr;
    for (const Setting& s : settings) {
      if (flag == FlagName(s.key)) found = &s;
    }
    if (found == nullptr) {
      *error = "unknown flag '" + flag + "' (see --help)";
      return false;
    }
    if (!AssignFromString(*found, value, error)) return false;
  }
  return out->show_help || out->show_version || ValidateServerConfig(out->config, error);
}

bool ValidateServerConfig(const ServerConfig& c, std::string* error) {
  auto fail = [error](const std::string& message) {
    *error = message;
    return false;
  };
  // Inclusive bounds; the upper ones keep every value that is cast to int (gRPC channel
  // arguments, message sizes) or multiplied (ms, bytes) far from overflow.
  auto within = [&](const char* key, auto value, uint64_t low, uint64_t high,
                    const char* high_is = nullptr) {
    if (static_cast<int64_t>(value) >= 0 && static_cast<uint64_t>(value) >= low &&
        static_cast<uint64_t>(value) <= high) {
      return true;
    }
    *error = std::string(key) + ": must be within " + std::to_string(low) + ".." +
             std::to_string(high) + (high_is ? std::string(" (") + high_is + ")" : "") + ", got " +
             std::to_string(value);
    return false;
  };
  std::string why;
  if (!ValidateListenAddress(c.listen, &why)) return fail("listen: " + why);
  if (c.auth != "auto" && c.auth != "required" && c.auth != "off") {
    return fail("auth: must be auto, required or off, got '" + c.auth + "'");
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return fail(c.tls_cert.empty() ? "tls_cert: --tls-key needs --tls-cert"
                                   : "tls_key: --tls-cert needs --tls-key");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return fail("tls_client_ca: mutual TLS needs --tls-cert and --tls-key");
  }
  if (WindowMask mask = 0; !ParseDefaultWindows(c.default_window, &mask)) {
    return fail("default_window: must be 1m, 5m, 1h, total or all, got '" +
                c.default_window.substr(0, 64) + "'");
  }
  if (c.init_admin != 0 && c.data_dir.empty()) {
    return fail("init_admin: needs --data-dir (the admin's token file goes there)");
  }
  if (c.init_admin != 0 && c.auth == "off") {
    return fail("init_admin: --auth off never asks for the token it would create");
  }
  if (!c.cluster.empty()) {
    if (c.data_dir.empty()) return fail("cluster: needs --data-dir (users, tokens, its lock)");
    const bool node_ok =
        c.cluster_node.size() <= 64 &&
        std::all_of(c.cluster_node.begin(), c.cluster_node.end(),
                    [](unsigned char ch) { return std::isalnum(ch) || ch == '_' || ch == '-'; });
    if (!node_ok) {
      return fail("cluster_node: up to 64 characters of A-Z, a-z, 0-9, _ and -, got '" +
                  c.cluster_node.substr(0, 100) + "'");
    }
    if (c.cluster_partitions < 1 || c.cluster_partitions > 1024) {
      return fail("cluster_partitions: must be 1-1024, got " +
                  std::to_string(c.cluster_partitions));
    }
    if (c.cluster_lease_ms < 1000 || c.cluster_lease_ms > 60'000) {
      return fail("cluster_lease_ms: must be 1000-60000, got " +
                  std::to_string(c.cluster_lease_ms));
    }
    if (c.cluster_exchange_ms < 100 || c.cluster_exchange_ms > 10'000) {
      return fail("cluster_exchange_ms: must be 100-10000, got " +
                  std::to_string(c.cluster_exchange_ms));
    }
    std::stringstream servers(c.cluster);
    for (std::string server; std::getline(servers, server, ',');) {
      if (server.rfind("nats://", 0) != 0 || server.size() <= 7) {
        return fail("cluster: expected nats://HOST:PORT entries, got '" + server.substr(0, 100) +
                    "'");
      }
    }
    const bool stream_ok =
        !c.cluster_stream.empty() && c.cluster_stream.size() <= 64 &&
        std::all_of(c.cluster_stream.begin(), c.cluster_stream.end(),
                    [](unsigned char ch) { return std::isalnum(ch) || ch == '_' || ch == '-'; });
    if (!stream_ok) {
      return fail("cluster_stream: 1-64 characters of A-Z, a-z, 0-9, _ and -, got '" +
                  c.cluster_stream.substr(0, 100) + "'");
    }
    if (c.cluster_replicas < 1 || c.cluster_replicas > 5) {
      return fail("cluster_replicas: must be 1-5, got " + std::to_string(c.cluster_replicas));
    }
  }
  if (c.fsync != "always" && c.fsync != "interval" && c.fsync != "never") {
    return fail("fsync: must be always, interval or never, got '" + c.fsync + "'");
  }
  if (!c.metrics_listen.empty() && !ValidateListenAddress(c.metrics_listen, &why)) {
    return fail("metrics_listen: " + why);
  }
  if (!c.http_listen.empty() && !ValidateListenAddress(c.http_listen, &why)) {
    return fail("http_listen: " + why);
  }
  if (std::string origin_error;
      !http::OriginPolicy::Parse(c.http_allowed_origins, nullptr, &origin_error)) {
    return fail("http_allowed_origins: " + origin_error);
  }
  if (!within("http_threads", c.http_threads, 1, 64) ||
      !within("http_max_connections", c.http_max_connections, 1, 1'000'000) ||
      !within("http_max_connections_per_address", c.http_max_connections_per_address, 1,
              c.http_max_connections, "http_max_connections") ||
      !within("http_max_body_bytes", c.http_max_body_bytes, 1024, 64u << 20) ||
      !within("http_request_timeout_ms", c.http_request_timeout_ms, 100, 600'000)) {
    return false;
  }
  if (!within("workers", c.workers, 0, 256) || !within("tick_ms", c.tick_ms, 50, 60'000) ||
      !within("push_min_interval_ms", c.push_min_interval_ms, 0, c.tick_ms, "tick_ms") ||
      !within("max_subscribers", c.max_subscribers, 1, 1'000'000) ||
      !within("max_live_segments", c.max_live_segments, 0, agg::kMaxLiveSegments / 2) ||
      !within("live_segment_idle_s", c.live_segment_idle_s, 0, 86'400) ||
      !within("max_streams", c.max_streams, 1, 1'000'000) ||
      !within("max_streams_per_peer", c.max_streams_per_peer, 1, c.max_streams, "max_streams") ||
      !within("stream_idle_timeout_ms", c.stream_idle_timeout_ms, 100, 86'400'000) ||
      !within("max_concurrent_streams_per_connection", c.max_concurrent_streams_per_connection, 1,
              100'000) ||
      !within("max_message_bytes", c.max_message_bytes, 1024, 256u << 20) ||
      !within("max_event_bytes", c.max_event_bytes, 1, c.max_message_bytes, "max_message_bytes") ||
      !within("max_event_properties", c.max_event_properties, 0, 10'000) ||
      !within("max_batch_events", c.max_batch_events, 1, 1'000'000) ||
      !within("max_sessions_per_analyze_stream", c.max_sessions_per_analyze_stream, 1,
              10'000'000) ||
      !within("max_invalid_actions_per_analyze_stream", c.max_invalid_actions_per_analyze_stream, 0,
              1'000'000'000) ||
      !within("memory_quota_bytes", c.memory_quota_bytes, 16u << 20, 1ull << 40) ||
      !within("shutdown_grace_ms", c.shutdown_grace_ms, 0, 3'600'000) ||
      !within("slow_subscriber_timeout_ms", c.slow_subscriber_timeout_ms, 1000, 3'600'000) ||
      !within("pending_requests_per_method", c.pending_requests_per_method, 0, 10'000) ||
      !within("max_analyze_sessions", c.max_analyze_sessions, 1, 10'000'000) ||
      !within("fsync_interval_ms", c.fsync_interval_ms, 1, 60'000) ||
      !within("log_segment_bytes", c.log_segment_bytes, 1u << 20, 1ull << 34) ||
      !within("log_max_pending_bytes", c.log_max_pending_bytes, 1u << 20, 1ull << 36) ||
      !within("skip_corrupt_records", c.skip_corrupt_records, 0, 1) ||
      !within("insecure", c.insecure, 0, 1) || !within("init_admin", c.init_admin, 0, 1) ||
      !within("checkpoint_interval_s", c.checkpoint_interval_s, 1, 86'400) ||
      !within("retention_minute_days", c.retention_minute_days, 1, 3650) ||
      !within("retention_hour_days", c.retention_hour_days, 1, 3650) ||
      !within("retention_day_days", c.retention_day_days, 1, 36'500) ||
      !within("history_flush_ms", c.history_flush_ms, 100, 600'000) ||
      !within("history_max_values", c.history_max_values, 1, 1'000'000) ||
      !within("history_segment_precision", c.history_segment_precision, 10, 14) ||
      !within("history_minute_precision", c.history_minute_precision, 10, 14) ||
      !within("producer_idle_expiry_s", c.producer_idle_expiry_s, 60, 365 * 86'400) ||
      !within("max_producers", c.max_producers, 1, 100'000'000) ||
      !within("publish_window_batches", c.publish_window_batches, 1, 10'000)) {
    return false;
  }
  if (c.malloc_trim_interval_ms != 0 &&
      !within("malloc_trim_interval_ms", c.malloc_trim_interval_ms, 100, 3'600'000,
              "or 0 for never")) {
    return false;
  }
  const agg::AggregatorConfig& a = c.aggregator;
  if (!within("dedupe_horizon_seconds", a.dedupe_horizon_seconds, 1, 7 * 86'400) ||
      !within("dedupe_capacity_log2", a.dedupe_capacity_log2, 10, 30) ||
      !within("max_event_age_seconds", a.max_event_age_seconds, 1, 3600) ||
      !within("max_event_future_seconds", a.max_event_future_seconds, 0, 86'400) ||
      !within("dimension_cardinality_cap", a.dimension_cardinality_cap, 1, 100'000) ||
      !within("top_k_capacity", a.top_k_capacity, a.top_k, 100'000) ||
      !within("max_sessions", a.max_sessions, 1, 100'000'000) ||
      !within("active_session_seconds", a.active_session_seconds, 1, 86'400) ||
      !within("max_dimension_value_bytes", a.max_dimension_value_bytes, 16, 2048,
              "the longest value kept") ||
      !within("key_dictionary_max_bytes", a.key_dictionary_max_bytes, 1u << 20, 1u << 30,
              "1 MiB..1 GiB")) {
    return false;
  }
  // A log record holds one ingest message as received (plus a small header): it must fit the
  // log's record limit (64 MiB).
  if (!c.data_dir.empty() && c.max_message_bytes > (63u << 20)) {
    return fail("max_message_bytes: at most " + std::to_string(63u << 20) +
                " with a data_dir (an ingest message is one event-log record)");
  }
  return true;
}

bool ValidateListenAddress(const std::string& address, std::string* why) {
  const size_t colon = address.rfind(':');
  if (address.empty() || colon == std::string::npos) {
    *why = "expected HOST:PORT, got '" + address + "'";
    return false;
  }
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  uint32_t port_number = 0;
  if (!ParseInteger(std::string_view(port), &port_number) || port_number > 65535) {
    *why = "port must be a number within 0..65535 (0 picks a free port), got '" + port + "' in '" +
           address + "'";
    return false;
  }
  boost::system::error_code parse_error;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    boost::asio::ip::make_address_v6(host.substr(1, host.size() - 2), parse_error);
    if (parse_error) {
      *why = "'" + host + "' is not an IPv6 address in '" + address + "'";
      return false;
    }
    return true;
  }
  if (host.find(':') != std::string::npos) {
    *why = "an IPv6 address needs brackets ([::1]:50051), got '" + address + "'";
    return false;
  }
  boost::asio::ip::make_address_v4(host, parse_error);
  if (!parse_error) return true;
  // Otherwise a DNS name (RFC 1123 labels).
  const bool name_ok =
      !host.empty() && host.size() <= 253 && host.front() != '-' && host.front() != '.' &&
      std::all_of(host.begin(), host.end(),
                  [](char ch) {
                    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.';
                  }) &&
      !std::all_of(host.begin(), host.end(), [](char ch) {
        return std::isdigit(static_cast<unsigned char>(ch)) || ch == '.';
      });
  if (!name_ok) {
    *why = "'" + host +
           "' is neither an IPv4 address, a bracketed IPv6 address nor a host name in '" + address +
           "'";
    return false;
  }
  return true;
}

bool IsLoopbackAddress(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (host == "localhost") return true;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code parse_error;
  const boost::asio::ip::address ip = boost::asio::ip::make_address(host, parse_error);
  return !parse_error && ip.is_loopback();
}

std::string ServerHelpText() {
  ServerConfig defaults;
  defaults.data_dir = kDefaultDataDir;
  defaults.http_listen = kDefaultHttpListen;
  std::ostringstream out;
  out << "analytics_server: real-time web analytics over gRPC\n\n"
         "Usage: analytics_server [--config FILE] [--flag VALUE]...\n\n"
         "  --config FILE   JSON object with any of the keys below ('-' written as '_');\n"
         "                  flags given on the command line win over the file\n"
         "  --init          create the first admin user and its API token in the data\n"
         "                  directory, write the token to DATA_DIR/admin.token (mode 0600)\n"
         "                  and exit; from then on calls need a token (--auth auto)\n"
         "  --help          this text\n"
         "  --version       print the version\n\n";
  for (const Setting& s : Settings(defaults)) {
    std::string current = std::visit(
        [](auto* target) {
          using T = std::remove_pointer_t<decltype(target)>;
          if constexpr (std::is_same_v<T, std::string>) {
            return '"' + *target + '"';
          } else {
            return std::to_string(*target);
          }
        },
        s.target);
    std::string flag = FlagName(s.key);
    out << "  " << flag << std::string(flag.size() < 40 ? 40 - flag.size() : 1, ' ') << s.help
        << " [default " << current << "]\n";
  }
  const uint64_t slots = uint64_t{1} << defaults.aggregator.dedupe_capacity_log2;
  out << "\nDe-duplication capacity: " << agg::DedupeTable::CapacityIdsFor(slots)
      << " event ids per --dedupe-horizon-seconds (" << defaults.aggregator.dedupe_horizon_seconds
      << " s) at the defaults, in " << (slots * 8 >> 20)
      << " MiB; 3/4 of 2^dedupe_capacity_log2 in general. More distinct ids within one horizon "
         "are counted in analytics_dedupe_early_evictions_total.\n";
  out << "\nSignals: SIGINT/SIGTERM stop accepting, let open streams finish within "
         "--shutdown-grace-ms, then exit.\n";
  return out.str();
}

}  // namespace rta::server
