#pragma once

#include <array>
#include <cstdint>

#include "server/aggregator/metric_catalog.h"
#include "server/aggregator/state_codec.h"

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

  // Checkpoint and partial format (state_codec.h): every field as it is, in declaration order.
  // Load() checks nothing beyond the reader's bounds; callers validate values they rely on.
  void Save(StateWriter& out) const {
    out.U64(events);
    out.U64(page_views);
    out.U64(conversions);
    out.F64(revenue);
    for (uint64_t v : signals) out.U64(v);
    for (uint64_t v : ranked_totals) out.U64(v);
  }
  void Load(StateReader& in) {
    events = in.U64();
    page_views = in.U64();
    conversions = in.U64();
    revenue = in.F64();
    for (uint64_t& v : signals) v = in.U64();
    for (uint64_t& v : ranked_totals) v = in.U64();
  }
};

}  // namespace rta::agg::detail
