#pragma once

#include <atomic>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analytics.pb.h"
#include "dashboard_client/subscription.h"

namespace rta::dashboard {

// For logs and pipes: one line per update, e.g. "Updated metric: page_views = 1234 (1m)",
// "Updated metric: events_by_country{country=DE} = 12 (1m)".
std::string PlainLine(const analytics::MetricUpdate& update);

// The initial snapshot as one JSON document:
// {"server", "epoch", "sequence", "timestamp_ms",
//  "metrics": {"page_views": {"1m": 12, ...}, "top_pages": {"1m": {"total": 40, "top": [...]}},
//              "events_by_country": {"1m": {"DE": 3, ...}}, ...}}
nlohmann::json SnapshotJson(const std::vector<analytics::MetricUpdate>& updates,
                            const std::string& server);

// --once: subscribes, reads until the end of the initial snapshot, prints it (JSON or plain
// lines) and returns 0; 1 with a message on stderr when the server cannot be reached within
// `timeout` or refuses the request.
int RunOnce(const std::shared_ptr<grpc::Channel>& channel, const SubscriptionOptions& options,
            bool as_json, std::chrono::milliseconds timeout, FILE* out, FILE* err);

// --plain: prints every update as a line until `quit`; connection changes go to stderr.
// Returns 0; 1 (with a message) as soon as `out` fails a write: its reader is gone or its disk
// is full.
int RunPlain(Subscription& subscription, const std::string& servers, FILE* out, FILE* err,
             const std::atomic<bool>& quit);

}  // namespace rta::dashboard
