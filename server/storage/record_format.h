#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// The segment log's on-disk record framing.
//
// Why our own framing: neither Debian's RocksDB nor LevelDB exposes its log writer as a public
// API, and the log needs only a few lines of it. Unlike LevelDB's log, records are not split into
// 32 KiB blocks: a reader finds the next record after damage by scanning for a header whose own
// CRC checks (resync), which the header CRC makes safe, so a damaged length field costs only the
// records it covers.
//
// A segment file `<dir>/<first lsn, 20 digits>.log` is a sequence of records:
//
//   offset size  field
//   0      4     magic 0x52544C47 ("GLTR" as little-endian bytes), never all zeros, so that
//                zero-filled or preallocated space never reads as a record
//   4      4     payload length (<= kMaxRecordPayload)
//   8      8     lsn of this record
//   16     4     CRC32C of the payload
//   20     4     CRC32C of bytes 0..19 (the header CRC: a damaged length or lsn is detected
//                before the length is trusted)
//   24     n     payload
//
// All integers little-endian. Lsns increase strictly through the log (a record whose lsn is not
// above the previous one's is treated as corrupt).

namespace rta::storage::detail {

inline constexpr uint32_t kRecordMagic = 0x52544C47u;
inline constexpr size_t kRecordHeaderSize = 24;
inline constexpr uint32_t kMaxRecordPayload = 64u << 20;

struct RecordHeader {
  uint32_t length = 0;
  uint64_t lsn = 0;
  uint32_t payload_crc = 0;
};

// Appends one framed record to *out. payload_crc must be Crc32c(payload) (callers compute it
// outside their locks).
void AppendRecord(uint64_t lsn, std::string_view payload, uint32_t payload_crc, std::string* out);

// True if `data` starts with a header whose magic and header CRC check and whose length is
// sane. Says nothing about the payload.
bool DecodeRecordHeader(std::string_view data, RecordHeader* header);

struct ScannedRecord {
  uint64_t offset;
  uint64_t lsn;
  std::string_view payload;  // points into the scanned buffer
};

struct CorruptRegion {
  uint64_t offset;
  uint64_t length;
  std::string reason;
};

struct SegmentScan {
  std::vector<ScannedRecord> records;  // valid records, in file order
  std::vector<CorruptRegion> corrupt;  // damaged byte ranges between or after them, in order
  uint64_t valid_end = 0;              // offset just past the last valid record
  uint64_t last_lsn = 0;               // lsn of the last valid record (or the given prev_lsn)
};

// Splits a segment's bytes into valid records and corrupt regions. A header that fails its
// checks starts a region that ends at the next offset holding a wholly valid record (header,
// payload CRC and an lsn above the previous); a valid header whose payload CRC fails is a region
// of exactly that record. prev_lsn is the last lsn before this segment (0 for none).
SegmentScan ScanSegment(std::string_view data, uint64_t prev_lsn);

// For a buffer of framed records: the number of bytes of the whole records within the first n
// bytes, and the last lsn among them (0 if none).
size_t WholeRecordsPrefix(std::string_view framed, size_t n, uint64_t* last_lsn);

}  // namespace rta::storage::detail
