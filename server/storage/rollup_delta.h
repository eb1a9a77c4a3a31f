#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/storage/rollup_store.h"

namespace rta::storage {

// The wire form of a rollup flush between the nodes of a cluster: a partition owner folds its
// events into cells (RollupAccumulator) and ships them in its partial records
// (server/cluster/partial_record.h); every node decodes them and merges them into its own
// store. A run is a concatenation of entries with no count in front, so that a long run can be
// cut between two entries into parts that each fit a NATS message. An entry starts with a tag:
//   0, 1, 2 (the resolution): a cell delta (RollupWrite):
//     varint time_s (zigzag) | varint segment bytes | segment | varint cell bytes |
//     cell (RollupCell::Encode)
//   0x10: a value the owner admitted: u8 dimension | varint bytes | value
//   0x11: a session the owner forgot (expired or evicted): u64 session hash
//   0x12: a session's state: u64 session hash | varint bytes |
//     state (RollupAccumulator::TakeSessionChanges)
// The last three are the owner's history state, which every node keeps per partition beside
// the cells, so that the partition's next owner goes on from it: a session that spans a
// takeover still counts once and keeps its acquisition, and the admitted values stay admitted
// (server/cluster/cluster_history.h). Entries are applied in order: a session forgotten and
// begun again within one flush is forgotten first, then stored. Why a format of our own: the
// cell already has one (rollup_cell.h), and these few framing fields do not need a schema.

// An entry of the owner's history state, as decoded.
struct RollupStateEntry {
  enum class Kind : uint8_t {
    kValueAdmitted = 0x10,
    kSessionForgotten = 0x11,
    kSessionState = 0x12
  };
  Kind kind = Kind::kValueAdmitted;
  uint8_t dimension = 0;      // kValueAdmitted
  uint64_t session_hash = 0;  // kSessionForgotten, kSessionState
  std::string bytes;          // the value (kValueAdmitted) or the state (kSessionState)
};

// A decoded run (or several parts of one flush, decoded one after the other).
struct RollupRun {
  std::vector<RollupWrite> writes;
  std::vector<RollupStateEntry> state;  // in the order they were appended
};

// Appends one entry's bytes to *out.
void AppendRollupWrite(const RollupWrite& write, std::string* out);
void AppendRollupValueAdmitted(size_t dimension, std::string_view value, std::string* out);
void AppendRollupSessionForgotten(uint64_t session_hash, std::string* out);
void AppendRollupSessionState(uint64_t session_hash, std::string_view state, std::string* out);

// Decodes a run and appends its entries to *out. False with *error naming what was wrong (and
// which entry) on bytes that are not such a run; *out then holds the entries before it.
bool DecodeRollupRun(std::string_view bytes, RollupRun* out, std::string* error);

}  // namespace rta::storage
