#include "server/storage/record_format.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "server/storage/crc32c.h"

namespace rta::storage::detail {
namespace {

// Record i (from 0) has lsn first_lsn + i and a payload of size + i copies of one letter.
std::string Payload(uint64_t index, size_t size) {
  return std::string(size + index, static_cast<char>('a' + index % 26));
}

std::string Framed(uint64_t first_lsn, int count, size_t size) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    const std::string payload = Payload(static_cast<uint64_t>(i), size);
    AppendRecord(first_lsn + static_cast<uint64_t>(i), payload, Crc32c(payload), &out);
  }
  return out;
}

TEST_CASE("scanning finds every record of a clean segment", "[storage][format]") {
  const std::string data = Framed(7, 20, 50);
  SegmentScan scan = ScanSegment(data, 6);
  CHECK(scan.corrupt.empty());
  REQUIRE(scan.records.size() == 20);
  CHECK(scan.records.front().lsn == 7);
  CHECK(scan.last_lsn == 26);
  CHECK(scan.valid_end == data.size());
  uint64_t last = 0;
  CHECK(WholeRecordsPrefix(data, data.size() - 1, &last) ==
        data.size() - (kRecordHeaderSize + 50 + 19));
  CHECK(last == 25);
  // Lsns must rise: after lsn 26, the same bytes are all out of order.
  CHECK(ScanSegment(data, 26).records.empty());
}

TEST_CASE("scanning damaged bytes never yields a record that does not check", "[storage][format]") {
  std::mt19937 rng(7);
  const std::string clean = Framed(1, 30, 40);
  for (int round = 0; round < 2000; ++round) {
    std::string data = clean;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) data[rng() % data.size()] ^= static_cast<char>(1 + rng() % 255);
    if (round % 3 == 0) data.resize(rng() % data.size());
    if (round % 5 == 0) data = std::string(rng() % 500, static_cast<char>(rng()));
    SegmentScan scan = ScanSegment(data, 0);
    uint64_t prev = 0, covered = 0;
    for (const auto& record : scan.records) {
      REQUIRE(record.lsn > prev);
      prev = record.lsn;
      REQUIRE(record.payload == Payload(record.lsn - 1, 40));
      covered += kRecordHeaderSize + record.payload.size();
    }
    for (const auto& region : scan.corrupt) covered += region.length;
    CHECK(covered == data.size());  // records and damage tile the file
  }
}

}  // namespace
}  // namespace rta::storage::detail
