#pragma once

#include <grpcpp/channel.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analytics.pb.h"
#include "clients/common/client_channel.h"

namespace rta::dashboard {

// What --range, --filter, --breakdown, --breakdown-limit, --step and --compare ask for.
struct RangeFlags {
  std::string range;                 // 1h, 24h, 7d, 30d, today, yesterday, month
  std::vector<std::string> filters;  // "dimension=value", each may hold several separated by spaces
  std::string breakdown;
  std::string breakdown_by;  // a metric; "" is the server's default
  int64_t breakdown_limit = 0;
  std::string step;  // "", 1m, 1h, 1d
  bool compare = false;
  std::vector<std::string> metrics;
};

// The --filter flags ("country=DE", several per flag separated by spaces) as filters of a
// RangeQuery or a SubscriptionRequest (the server checks the names); false with *error on a
// word without "=".
bool ParseFilterFlags(const std::vector<std::string>& texts,
                      google::protobuf::RepeatedPtrField<analytics::DimensionFilter>* out,
                      std::string* error);

// The RangeQuery for the flags; false with *error naming the flag that is wrong.
bool BuildRangeQuery(const RangeFlags& flags, analytics::RangeQuery* query, std::string* error);

// The answer as one JSON document:
// {"server", "from", "to", "from_ms", "to_ms", "step_seconds", "metrics": [...],
//  "totals": {"page_views": 12, ...},
//  "previous": {"from_ms", "to_ms", "totals": {...}, "change": {"page_views": 0.25, ...}},
//  "series": [{"start_ms", "start", "page_views": 3, ...}, ...],
//  "breakdown": {"dimension": "page", "rows": [{"value": "/home", "page_views": 9, ...}]},
//  "notes": [...]}
// "change" is relative ((current - previous) / previous), null when previous is 0.
nlohmann::json RangeJson(const analytics::RangeResult& result, const analytics::RangeQuery& query,
                         const std::string& server);

// The answer as text for a terminal or a log: the range, one line per metric with its total
// and change, then the breakdown as a table.
std::string RangeText(const analytics::RangeResult& result, const analytics::RangeQuery& query);

// --once with --range: one QueryMetrics call, printed; 0, or 1 with a message on stderr.
int RunRangeOnce(const std::shared_ptr<grpc::Channel>& channel,
                 const client::ChannelOptions& options, const analytics::RangeQuery& query,
                 bool as_json, std::chrono::milliseconds timeout, FILE* out, FILE* err);

}  // namespace rta::dashboard
