#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rta::cluster {

// One record of a partition's partial-delta subject (rta.partial.<p>), as the owner appends it
// to that subject's JetStream log and every node's merger reads it back:
//   "RTAH" | covered u64 | revision u64 | published_ms i64 | rollup_covered u64 | run u64 |
//   delta bytes u32 | segments bytes u32 | delta (Aggregator::TakePartial) | segments |
//   rollups (storage/rollup_delta.h)
// `covered`: the partition's events up to this stream sequence (of RTA_EVENTS) are in this
// record's live delta or the ones before it on the subject; the next owner resumes after it.
// `revision`: the owner's lease revision (counted as stale by mergers when lower than one
// already seen). `published_ms`: the owner's wall clock when it cut the delta, for the merge
// delay.
//
// History (`rollups`, `rollup_covered`, `run`): the owner ships its rollup cells less often than
// its live deltas (--history-flush-ms), so the record also says up to which event the rollups
// are shipped (`rollup_covered` <= `covered`); a next owner folds the events in between into
// the history again. A flush too large for one NATS message goes out as several records: the
// parts before the last carry the previous `rollup_covered`, the last one the new, so a node
// applies the parts only once the last arrives; `run` (drawn per owner setup) tells a node that
// parts of an owner that died before its last part will never be completed.
//
// Live segments (`segments`): for each live segment the owner counts (the cluster's, by their
// canonical key: server/live_segments.h), the segment's partial (Aggregator::TakePartial's
// SegmentPartial), as varint key bytes | key | varint partial bytes | partial, repeated
// (EncodeSegmentPartials / DecodeSegmentPartials).
//
// Little-endian, fixed width: a handful of fields beside the delta's own format. The older
// "RTAP" form (the first five fields' first three, then the delta; no history) is still read.
struct PartialRecord {
  uint64_t covered = 0;
  uint64_t revision = 0;
  int64_t published_ms = 0;
  uint64_t rollup_covered = 0;
  uint64_t run = 0;
  std::string_view delta;    // empty: no live delta in this record (a history part)
  std::string_view segments;  // empty: no live segment counted anything
  std::string_view rollups;  // empty: no rollup cells
};

// How long a partition's partial records stay in the stream (the owners trim older ones). A node
// that starts rebuilds its view from them, and the view's longest window is 1 hour: a record
// published more than an hour ago holds only buckets that every window has left (events older
// than the windows are refused at ingest in cluster mode). The second hour is margin for an
// owner that counted late. The chain's last record always stays: the next owner continues after
// it. A node's history that missed trimmed records copies a peer's (cluster_history.h).
inline constexpr int64_t kPartialRetentionMs = 2 * 3600 * 1000;

inline constexpr char kPartialMagic[4] = {'R', 'T', 'A', 'H'};
inline constexpr char kPartialMagicV1[4] = {'R', 'T', 'A', 'P'};
inline constexpr size_t kPartialHeaderBytesV1 = 4 + 8 + 8 + 8;
inline constexpr size_t kPartialHeaderBytes = kPartialHeaderBytesV1 + 8 + 8 + 4 + 4;

inline std::string EncodePartialRecord(const PartialRecord& record) {
  std::string out(kPartialHeaderBytes, '\0');
  const auto delta_bytes = static_cast<uint32_t>(record.delta.size());
  const auto segments_bytes = static_cast<uint32_t>(record.segments.size());
  char* at = out.data();
  std::memcpy(at, kPartialMagic, 4);
  std::memcpy(at + 4, &record.covered, 8);
  std::memcpy(at + 12, &record.revision, 8);
  std::memcpy(at + 20, &record.published_ms, 8);
  std::memcpy(at + 28, &record.rollup_covered, 8);
  std::memcpy(at + 36, &record.run, 8);
  std::memcpy(at + 44, &delta_bytes, 4);
  std::memcpy(at + 48, &segments_bytes, 4);
  out.append(record.delta);
  out.append(record.segments);
  out.append(record.rollups);
  return out;
}

// False when `bytes` is not a partial record (too short, another magic, a delta longer than
// the record).
inline bool DecodePartialRecord(std::string_view bytes, PartialRecord* out) {
  if (bytes.size() < kPartialHeaderBytesV1) return false;
  const bool v1 = std::memcmp(bytes.data(), kPartialMagicV1, 4) == 0;
  if (!v1 && std::memcmp(bytes.data(), kPartialMagic, 4) != 0) return false;
  std::memcpy(&out->covered, bytes.data() + 4, 8);
  std::memcpy(&out->revision, bytes.data() + 12, 8);
  std::memcpy(&out->published_ms, bytes.data() + 20, 8);
  if (v1) {
    out->rollup_covered = out->covered;  // no history shipped: nothing left to fold again
    out->run = 0;
    out->delta = bytes.substr(kPartialHeaderBytesV1);
    out->segments = {};
    out->rollups = {};
    return true;
  }
  if (bytes.size() < kPartialHeaderBytes) return false;
  uint32_t delta_bytes = 0;
  uint32_t segments_bytes = 0;
  std::memcpy(&out->rollup_covered, bytes.data() + 28, 8);
  std::memcpy(&out->run, bytes.data() + 36, 8);
  std::memcpy(&delta_bytes, bytes.data() + 44, 4);
  std::memcpy(&segments_bytes, bytes.data() + 48, 4);
  const size_t body = bytes.size() - kPartialHeaderBytes;
  if (delta_bytes > body || segments_bytes > body - delta_bytes) return false;
  out->delta = bytes.substr(kPartialHeaderBytes, delta_bytes);
  out->segments = bytes.substr(kPartialHeaderBytes + delta_bytes, segments_bytes);
  out->rollups = bytes.substr(kPartialHeaderBytes + delta_bytes + segments_bytes);
  return true;
}

// A record's segments section: (canonical key, segment partial) pairs.
struct SegmentPartialView {
  std::string_view key;
  std::string_view partial;
};

inline void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

inline void AppendSegmentPartial(std::string_view key, std::string_view partial, std::string* out) {
  AppendVarint(key.size(), out);
  out->append(key);
  AppendVarint(partial.size(), out);
  out->append(partial);
}

// Calls visit(SegmentPartialView) for each pair; false when the bytes are not such a section
// (the pairs before the damage were visited).
template <typename Visit>
bool ForEachSegmentPartial(std::string_view bytes, Visit&& visit) {
  size_t at = 0;
  auto varint = [&](uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64 && at < bytes.size(); shift += 7) {
      const auto byte = static_cast<uint8_t>(bytes[at++]);
      *value |= uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  };
  while (at < bytes.size()) {
    uint64_t key_bytes = 0, partial_bytes = 0;
    if (!varint(&key_bytes) || key_bytes > bytes.size() - at) return false;
    const std::string_view key = bytes.substr(at, key_bytes);
    at += key_bytes;
    if (!varint(&partial_bytes) || partial_bytes > bytes.size() - at) return false;
    visit(SegmentPartialView{key, bytes.substr(at, partial_bytes)});
    at += partial_bytes;
  }
  return true;
}

}  // namespace rta::cluster
