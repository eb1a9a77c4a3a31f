#include "server/config_parser.h"

#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <variant>

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
      {"listen", &c.listen, "gRPC listen address HOST:PORT (port 0 picks a free port)"},
      {"metrics_listen", &c.metrics_listen,
       "Prometheus /metrics listen address HOST:PORT (empty disables it)"},
      {"workers", &c.workers, "completion queues, one thread each (0 = number of cores)"},
      {"tick_ms", &c.tick_ms, "aggregator tick and subscriber update period, ms (>= 50)"},
      {"push_min_interval_ms", &c.push_min_interval_ms,
       "least time between two snapshots published early for push_on_change subscribers, ms"},
      {"max_subscribers", &c.max_subscribers, "SubscribeMetrics streams open at once"},
      {"max_streams", &c.max_streams, "streaming calls of all kinds open at once"},
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
      {"memory_quota_bytes", &c.memory_quota_bytes, "gRPC ResourceQuota for transport buffers"},
      {"shutdown_grace_ms", &c.shutdown_grace_ms,
       "on SIGINT/SIGTERM, how long open streams get to finish, ms"},
      {"slow_subscriber_timeout_ms", &c.slow_subscriber_timeout_ms,
       "a subscriber that has not taken a write for this long is disconnected, ms"},
      {"pending_requests_per_method", &c.pending_requests_per_method,
       "requests pre-posted per method and queue (0 = automatic)"},
      {"malloc_trim_interval_ms", &c.malloc_trim_interval_ms,
       "how often freed heap memory is returned to the OS with malloc_trim, ms (0 = never)"},
      {"dedupe_horizon_seconds", &a.dedupe_horizon_seconds,
       "an event_id seen again within this many seconds counts once"},
      {"dedupe_capacity_log2", &a.dedupe_capacity_log2,
       "log2 of the event ids the de-duplication table holds (8 bytes each)"},
      {"max_event_age_seconds", &a.max_event_age_seconds, "older events are rejected"},
      {"max_event_future_seconds", &a.max_event_future_seconds,
       "events further in the future are rejected"},
      {"dimension_cardinality_cap", &a.dimension_cardinality_cap,
       "distinct country/device values kept before folding into __other__"},
      {"top_k_capacity", &a.top_k_capacity, "Space-Saving counters per top-k summary"},
      {"max_sessions", &a.max_sessions, "sessions tracked at once for session metrics"},
      {"active_session_seconds", &a.active_session_seconds,
       "a session is active if it had an event within this many seconds"},
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

}  // namespace

bool ParseCommandLine(const std::vector<std::string>& args, CommandLine* out, std::string* error) {
  // Split "--key=value" and "--key value" into pairs first, so --config can be applied before
  // the other flags whatever its position.
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out->show_help = true;
      continue;
    }
    if (arg == "--version") {
      out->show_version = true;
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
  if (c.listen.empty() || c.listen.rfind(':') == std::string::npos) {
    return fail("listen: expected HOST:PORT, got '" + c.listen + "'");
  }
  if (!c.metrics_listen.empty() && c.metrics_listen.rfind(':') == std::string::npos) {
    return fail("metrics_listen: expected HOST:PORT, got '" + c.metrics_listen + "'");
  }
  if (c.workers > 256) return fail("workers: at most 256");
  if (c.tick_ms < 50 || c.tick_ms > 60'000) return fail("tick_ms: must be within 50..60000");
  if (c.push_min_interval_ms > c.tick_ms) {
    return fail("push_min_interval_ms: at most tick_ms (" + std::to_string(c.tick_ms) + ")");
  }
  if (c.max_subscribers == 0) return fail("max_subscribers: must be positive");
  if (c.max_streams == 0) return fail("max_streams: must be positive");
  if (c.max_message_bytes < 1024) return fail("max_message_bytes: at least 1024");
  if (c.max_event_bytes == 0 || c.max_event_bytes > c.max_message_bytes) {
    return fail("max_event_bytes: must be within 1..max_message_bytes");
  }
  if (c.slow_subscriber_timeout_ms < 1000) return fail("slow_subscriber_timeout_ms: at least 1000");
  if (c.max_batch_events == 0) return fail("max_batch_events: must be positive");
  if (c.malloc_trim_interval_ms != 0 && c.malloc_trim_interval_ms < 100) {
    return fail("malloc_trim_interval_ms: 0 (never) or at least 100");
  }
  if (c.max_concurrent_streams_per_connection == 0) {
    return fail("max_concurrent_streams_per_connection: must be positive");
  }
  if (c.memory_quota_bytes < (16u << 20)) return fail("memory_quota_bytes: at least 16 MiB");
  const agg::AggregatorConfig& a = c.aggregator;
  if (a.dedupe_horizon_seconds < 1) return fail("dedupe_horizon_seconds: must be positive");
  if (a.dedupe_capacity_log2 < 10 || a.dedupe_capacity_log2 > 30) {
    return fail("dedupe_capacity_log2: must be within 10..30");
  }
  if (a.max_event_age_seconds < 1 || a.max_event_age_seconds > 3600) {
    return fail("max_event_age_seconds: must be within 1..3600 (the longest window)");
  }
  if (a.max_event_future_seconds < 0) return fail("max_event_future_seconds: must be >= 0");
  if (a.dimension_cardinality_cap == 0) return fail("dimension_cardinality_cap: must be positive");
  if (a.top_k_capacity < a.top_k) return fail("top_k_capacity: must be at least top_k (10)");
  if (a.max_sessions == 0) return fail("max_sessions: must be positive");
  if (a.active_session_seconds < 1) return fail("active_session_seconds: must be positive");
  return true;
}

std::string ServerHelpText() {
  ServerConfig defaults;
  std::ostringstream out;
  out << "analytics_server: real-time web analytics over gRPC\n\n"
         "Usage: analytics_server [--config FILE] [--flag VALUE]...\n\n"
         "  --config FILE   JSON object with any of the keys below ('-' written as '_');\n"
         "                  flags given on the command line win over the file\n"
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
  out << "\nSignals: SIGINT/SIGTERM stop accepting, let open streams finish within "
         "--shutdown-grace-ms, then exit.\n";
  return out.str();
}

}  // namespace rta::server
