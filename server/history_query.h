#pragma once

#include <grpcpp/support/status.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "analytics.pb.h"
#include "server/storage/rollup_store.h"

namespace rta::server {

// The KPIs a range query answers, in the order of RangeResult.metrics when none are asked for.
inline constexpr std::array<std::string_view, 11> kRangeMetrics = {
    "events_total",     "page_views",       "conversions",     "revenue",
    "unique_visitors",  "sessions",         "bounce_rate",     "conversion_rate",
    "page_load_ms_p50", "page_load_ms_p95", "page_load_ms_p99"};

// Answers QueryMetrics from the rollup store (see RangeQuery in proto/analytics.proto): resolves
// the range against `now_ms`, picks the resolution, scans the segment's cells, and merges them
// (counters add, HyperLogLogs take register maxima, sketches add bins), so a range's visitors
// are the union's estimate, never a sum. Two conditions, or one with a breakdown, read the
// day resolution's pair cells (additive KPIs only; NaN and a note for the rest). A bad query
// gets INVALID_ARGUMENT naming the field; what is not stored (three or more conditions, a
// breakdown within two) gets UNIMPLEMENTED saying so. Reads RocksDB: call it off the
// completion-queue threads. Thread-safe (the store is).
grpc::Status AnswerRangeQuery(const analytics::RangeQuery& query, const storage::RollupStore& store,
                              int64_t now_ms, analytics::RangeResult* out);

}  // namespace rta::server
