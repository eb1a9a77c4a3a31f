#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/storage/rollup_store.h"

namespace rta::storage {

// The wire form of rollup cell deltas (RollupWrite) between the nodes of a cluster: a partition
// owner folds its events into cells (RollupAccumulator) and ships them in its partial records
// (server/cluster/partial_record.h); every node decodes them and merges them into its own
// store. A delta run is the concatenation of writes, each:
//   u8 resolution | varint time_s (zigzag) | varint segment bytes | segment |
//   varint cell bytes | cell (RollupCell::Encode)
// with no count in front, so that a long run can be cut between two writes into parts that
// each fit a NATS message. Why a format of our own: the cell already has one
// (rollup_cell.h), and these few framing fields do not need a schema.

// Appends `write`'s bytes to *out.
void AppendRollupWrite(const RollupWrite& write, std::string* out);

// Decodes a run of writes and appends them to *out. False with *error naming what was wrong
// (and which write) on bytes that are not such a run; *out then holds the writes before it.
bool DecodeRollupWrites(std::string_view bytes, std::vector<RollupWrite>* out, std::string* error);

}  // namespace rta::storage
