#pragma once

#include <cstdint>

#include "analytics.pb.h"
#include "server/storage/rollup_accumulator.h"

namespace rta::storage {

// What the history takes of one accepted event: its time (`ingest_ms` when it has none), kind,
// value, the visitor and session hashed with the store's seeds, and its dimension values (cut
// to 256 bytes; a value with a NUL byte, which a segment key cannot hold, as __other__). The
// views in the result point into `event`.
RollupEvent RollupEventOf(const analytics::EventData& event, int64_t ingest_ms,
                          uint64_t visitor_seed, uint64_t session_seed);

}  // namespace rta::storage
