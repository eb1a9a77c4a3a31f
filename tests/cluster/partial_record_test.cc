#include "server/cluster/partial_record.h"

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

namespace rta::cluster {
namespace {

TEST_CASE(
    "partial record: its fields, live delta and rollups round-trip and the older form is read",
    "[partial_record]") {
  PartialRecord record;
  record.covered = 41;
  record.revision = 7;
  record.published_ms = 1'800'000'000'123;
  record.rollup_covered = 33;
  record.run = 0xfeedface12345678ull;
  record.delta = "live-delta";
  record.rollups = "rollup-bytes";
  const std::string bytes = EncodePartialRecord(record);

  PartialRecord decoded;
  REQUIRE(DecodePartialRecord(bytes, &decoded));
  CHECK(decoded.covered == 41);
  CHECK(decoded.revision == 7);
  CHECK(decoded.published_ms == 1'800'000'000'123);
  CHECK(decoded.rollup_covered == 33);
  CHECK(decoded.run == 0xfeedface12345678ull);
  CHECK(decoded.delta == "live-delta");
  CHECK(decoded.rollups == "rollup-bytes");

  // Live segments: (key, partial) pairs, read back in order; a cut pair is refused.
  std::string segments;
  AppendSegmentPartial("05:DE", "partial-one", &segments);
  AppendSegmentPartial(std::string(200, 'k'), std::string(300, 'p'), &segments);
  record.segments = segments;
  const std::string with_segments = EncodePartialRecord(record);  // decoded views point into it
  REQUIRE(DecodePartialRecord(with_segments, &decoded));
  CHECK(decoded.delta == "live-delta");
  CHECK(decoded.rollups == "rollup-bytes");
  std::vector<std::pair<std::string, std::string>> pairs;
  REQUIRE(ForEachSegmentPartial(decoded.segments, [&](const SegmentPartialView& pair) {
    pairs.emplace_back(pair.key, pair.partial);
  }));
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0] == std::make_pair(std::string("05:DE"), std::string("partial-one")));
  CHECK(pairs[1].first == std::string(200, 'k'));
  CHECK(pairs[1].second == std::string(300, 'p'));
  CHECK_FALSE(ForEachSegmentPartial(std::string_view(segments).substr(0, segments.size() - 1),
                                    [](const SegmentPartialView&) {}));
  record.segments = {};

  // A history part: no live delta.
  record.delta = {};
  const std::string history_part = EncodePartialRecord(record);
  REQUIRE(DecodePartialRecord(history_part, &decoded));
  CHECK(decoded.delta.empty());
  CHECK(decoded.rollups == "rollup-bytes");

  // Too short, or a delta longer than the record: not a record.
  CHECK_FALSE(
      DecodePartialRecord(std::string_view(bytes).substr(0, kPartialHeaderBytes - 1), &decoded));
  std::string long_delta = bytes;
  long_delta[44] = 127;
  CHECK_FALSE(DecodePartialRecord(std::string_view(long_delta).substr(0, kPartialHeaderBytes + 3),
                                  &decoded));
  std::string other = bytes;
  other[3] = 'X';
  CHECK_FALSE(DecodePartialRecord(other, &decoded));

  // The form before the history: its rollups count as shipped up to `covered`.
  std::string v1(kPartialHeaderBytesV1, '\0');
  std::memcpy(v1.data(), kPartialMagicV1, 4);
  const uint64_t covered = 9;
  std::memcpy(v1.data() + 4, &covered, 8);
  v1 += "old-delta";
  REQUIRE(DecodePartialRecord(v1, &decoded));
  CHECK(decoded.covered == 9);
  CHECK(decoded.rollup_covered == 9);
  CHECK(decoded.delta == "old-delta");
  CHECK(decoded.rollups.empty());
}

}  // namespace
}  // namespace rta::cluster
