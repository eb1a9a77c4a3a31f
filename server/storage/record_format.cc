#include "server/storage/record_format.h"

#include <cstring>

#include "server/storage/crc32c.h"

namespace rta::storage::detail {
namespace {

void Put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void Put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t Get32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// A record that fully checks at `pos`: header, payload within the buffer, payload CRC, lsn.
bool ValidRecordAt(std::string_view data, size_t pos, uint64_t prev_lsn, RecordHeader* h) {
  if (!DecodeRecordHeader(data.substr(pos), h)) return false;
  if (data.size() - pos - kRecordHeaderSize < h->length) return false;
  if (h->lsn <= prev_lsn) return false;
  return Crc32c(data.substr(pos + kRecordHeaderSize, h->length)) == h->payload_crc;
}

std::string Describe(const char* what, uint64_t value) {
  return std::string(what) + std::to_string(value);
}

}  // namespace

void AppendRecord(uint64_t lsn, std::string_view payload, uint32_t payload_crc, std::string* out) {
  char header[kRecordHeaderSize];
  Put32(header, kRecordMagic);
  Put32(header + 4, static_cast<uint32_t>(payload.size()));
  Put64(header + 8, lsn);
  Put32(header + 16, payload_crc);
  Put32(header + 20, Crc32cExtend(0, header, 20));
  out->append(header, kRecordHeaderSize);
  out->append(payload);
}

bool DecodeRecordHeader(std::string_view data, RecordHeader* header) {
  if (data.size() < kRecordHeaderSize) return false;
  const char* p = data.data();
  if (Get32(p) != kRecordMagic) return false;
  if (Get32(p + 20) != Crc32cExtend(0, p, 20)) return false;
  header->length = Get32(p + 4);
  header->lsn = Get64(p + 8);
  header->payload_crc = Get32(p + 16);
  return header->length <= kMaxRecordPayload && header->lsn != 0;
}

SegmentScan ScanSegment(std::string_view data, uint64_t prev_lsn) {
  SegmentScan scan;
  scan.last_lsn = prev_lsn;
  size_t pos = 0;
  const size_t size = data.size();
  while (pos < size) {
    RecordHeader h;
    if (DecodeRecordHeader(data.substr(pos), &h)) {
      if (size - pos - kRecordHeaderSize < h.length) {
        scan.corrupt.push_back({pos, size - pos,
                                Describe("record extends past the end of the file, lsn ", h.lsn)});
        break;
      }
      const size_t end = pos + kRecordHeaderSize + h.length;
      std::string_view payload = data.substr(pos + kRecordHeaderSize, h.length);
      if (Crc32c(payload) != h.payload_crc) {
        scan.corrupt.push_back({pos, end - pos, Describe("payload CRC mismatch, lsn ", h.lsn)});
      } else if (h.lsn <= scan.last_lsn) {
        scan.corrupt.push_back(
            {pos, end - pos, Describe("lsn ", h.lsn) + " not above " + std::to_string(scan.last_lsn)});
      } else {
        scan.records.push_back({pos, h.lsn, payload});
        scan.last_lsn = h.lsn;
        scan.valid_end = end;
      }
      pos = end;
      continue;
    }
    // A damaged header: its length cannot be trusted, so resync on the next valid record.
    const char* reason = size - pos < kRecordHeaderSize ? "incomplete record header"
                                                        : "bad record header (magic or CRC)";
    size_t next = size;
    const std::string_view magic("\x47\x4C\x54\x52", 4);  // kRecordMagic, little-endian
    for (size_t q = data.find(magic, pos + 1); q != std::string_view::npos;
         q = data.find(magic, q + 1)) {
      RecordHeader candidate;
      if (ValidRecordAt(data, q, scan.last_lsn, &candidate)) {
        next = q;
        break;
      }
    }
    scan.corrupt.push_back({pos, next - pos, reason});
    pos = next;
  }
  return scan;
}

size_t WholeRecordsPrefix(std::string_view framed, size_t n, uint64_t* last_lsn) {
  size_t pos = 0;
  *last_lsn = 0;
  while (pos + kRecordHeaderSize <= n) {
    const size_t length = Get32(framed.data() + pos + 4);
    if (pos + kRecordHeaderSize + length > n) break;
    *last_lsn = Get64(framed.data() + pos + 8);
    pos += kRecordHeaderSize + length;
  }
  return pos;
}

}  // namespace rta::storage::detail
