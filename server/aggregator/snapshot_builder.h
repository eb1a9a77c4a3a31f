#pragma once

#include <cstdint>
#include <memory>

#include "server/aggregator/snapshot.h"
#include "server/aggregator/windowed_state.h"

namespace rta::agg::detail {

// Turns a tick's metrics into an immutable Snapshot.
//
// Series order: catalog order (kMetricNames); scalar and top-k metrics have one series per window
// (kWindows order); a dimension metric has, per series value in DimensionTable order, one series
// per window, so a new value's series are appended at the end of its metric's group and every
// other series keeps its relative order from tick to tick.
//
// changed_sequence: a series whose value and top list equal those of the same series in the
// previous snapshot keeps the previous changed_sequence; a changed or new series gets
// `sequence`. Values are compared exactly (they are computed deterministically from the same
// buckets, so an untouched window reproduces the same double).
std::shared_ptr<const Snapshot> BuildSnapshot(const TickMetrics& metrics, uint64_t epoch,
                                              uint64_t sequence, int64_t time_ms,
                                              const Snapshot* previous);

}  // namespace rta::agg::detail
