#pragma once

#include <array>
#include <cstdint>

#include "server/aggregator/metric_catalog.h"

namespace rta::agg::detail {

// The additive per-bucket counts. Plain data: a shard delta writes it on the ingest thread, the
// windowed state sums it on the tick thread.
struct BucketCounters {
  uint64_t events = 0;
  uint64_t page_views = 0;
  uint64_t conversions = 0;                            // purchase + signup
  double revenue = 0.0;                                // sum of purchase values
  std::array<uint64_t, kSignalCount> signals{};        // by SessionSignal
  std::array<uint64_t, kRankedCount> ranked_totals{};  // events of each ranked kind

  void Add(const BucketCounters& other) {
    events += other.events;
    page_views += other.page_views;
    conversions += other.conversions;
    revenue += other.revenue;
    for (size_t i = 0; i < kSignalCount; ++i) signals[i] += other.signals[i];
    for (size_t i = 0; i < kRankedCount; ++i) ranked_totals[i] += other.ranked_totals[i];
  }
};

}  // namespace rta::agg::detail
