#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rta::cluster {

// One record of a partition's partial-delta subject (rta.partial.<p>), as the owner appends it
// to that subject's JetStream log and every node's merger reads it back:
//   "RTAP" | covered u64 | revision u64 | published_ms i64 | delta (Aggregator::TakePartial)
// `covered`: the partition's events up to this stream sequence (of RTA_EVENTS) are in this
// record or the ones before it on the subject; the next owner resumes after it. `revision`: the
// owner's lease revision (mergers drop a record from a lower revision than one already seen,
// a paused former owner's). `published_ms`: the owner's wall clock when it cut the delta, for
// the merge delay. Little-endian, fixed width: a handful of fields beside the delta's own
// format, no schema evolution needed yet (the magic changes when it is).
struct PartialRecord {
  uint64_t covered = 0;
  uint64_t revision = 0;
  int64_t published_ms = 0;
  std::string_view delta;
};

inline constexpr char kPartialMagic[4] = {'R', 'T', 'A', 'P'};
inline constexpr size_t kPartialHeaderBytes = 4 + 8 + 8 + 8;

inline std::string EncodePartialRecord(uint64_t covered, uint64_t revision, int64_t published_ms,
                                       std::string_view delta) {
  std::string out(kPartialHeaderBytes, '\0');
  std::memcpy(out.data(), kPartialMagic, 4);
  std::memcpy(out.data() + 4, &covered, 8);
  std::memcpy(out.data() + 12, &revision, 8);
  std::memcpy(out.data() + 20, &published_ms, 8);
  out.append(delta);
  return out;
}

// False when `bytes` is not a partial record (too short, another magic).
inline bool DecodePartialRecord(std::string_view bytes, PartialRecord* out) {
  if (bytes.size() < kPartialHeaderBytes || std::memcmp(bytes.data(), kPartialMagic, 4) != 0) {
    return false;
  }
  std::memcpy(&out->covered, bytes.data() + 4, 8);
  std::memcpy(&out->revision, bytes.data() + 12, 8);
  std::memcpy(&out->published_ms, bytes.data() + 20, 8);
  out->delta = bytes.substr(kPartialHeaderBytes);
  return true;
}

}  // namespace rta::cluster
