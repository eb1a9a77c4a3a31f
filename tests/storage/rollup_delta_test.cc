#include "server/storage/rollup_delta.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "server/storage/rollup_accumulator.h"

namespace rta::storage {
namespace {

constexpr int64_t kFlushStartMs = 1'800'000'000'000;  // ms; 2027-01-15T08:00:00Z, an hour start

// What one owner's flush ships: the cells and pairs of a few sessions' events.
std::vector<RollupWrite> FlushWrites() {
  RollupAccumulator accumulator({});
  const char* countries[] = {"DE", "FR", "US"};
  for (uint64_t i = 1; i <= 300; ++i) {
    RollupEvent event;
    event.event_ms = kFlushStartMs + static_cast<int64_t>(i) * 7'000;
    event.kind = i % 10 == 0  ? RollupEvent::Kind::kPurchase
                 : i % 3 == 0 ? RollupEvent::Kind::kPageLoad
                              : RollupEvent::Kind::kPageView;
    event.value = i % 10 == 0 ? 19.99 : static_cast<double>(i);
    event.session_hash = 1 + i / 4;
    event.visitor_hash = (1 + i / 8) * 0x9e3779b97f4a7c15ull;
    event.dimensions = {countries[i % 3], "mobile", "/p", "", "news", "spring", "page_view"};
    accumulator.Add(event);
  }
  return accumulator.TakeWrites();
}

std::string EncodeRun(const std::vector<RollupWrite>& writes) {
  std::string bytes;
  for (const RollupWrite& write : writes) AppendRollupWrite(write, &bytes);
  return bytes;
}

TEST_CASE("rollup delta: writes round-trip, and a run cut between writes decodes in parts",
          "[rollup_delta]") {
  const std::vector<RollupWrite> writes = FlushWrites();
  REQUIRE(writes.size() > 40);
  const std::string bytes = EncodeRun(writes);

  std::vector<RollupWrite> decoded;
  std::string error;
  REQUIRE(DecodeRollupWrites(bytes, &decoded, &error));
  REQUIRE(decoded.size() == writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    CHECK(decoded[i].resolution == writes[i].resolution);
    CHECK(decoded[i].time_s == writes[i].time_s);
    CHECK(decoded[i].segment == writes[i].segment);
    CHECK(decoded[i].cell.Encode() == writes[i].cell.Encode());
  }

  // Two runs (as two records of one flush) append to the same list.
  const size_t half = writes.size() / 2;
  const std::vector<RollupWrite> first(writes.begin(), writes.begin() + half);
  const std::vector<RollupWrite> second(writes.begin() + half, writes.end());
  std::vector<RollupWrite> joined;
  REQUIRE(DecodeRollupWrites(EncodeRun(first), &joined, &error));
  REQUIRE(DecodeRollupWrites(EncodeRun(second), &joined, &error));
  REQUIRE(joined.size() == writes.size());
  CHECK(EncodeRun(joined) == bytes);
}

TEST_CASE("rollup delta: truncated or damaged bytes are refused with a message naming the write",
          "[rollup_delta]") {
  const std::vector<RollupWrite> writes = FlushWrites();
  const std::string one = EncodeRun({writes.front()});
  // Every cut inside a write fails (a cut at its end is a shorter, valid run).
  for (size_t cut = 1; cut < one.size(); ++cut) {
    std::vector<RollupWrite> decoded;
    std::string error;
    INFO("cut at " << cut << " of " << one.size());
    CHECK_FALSE(DecodeRollupWrites(std::string_view(one).substr(0, cut), &decoded, &error));
    CHECK(error.find("rollup delta write 0") != std::string::npos);
  }

  std::string bad_resolution = EncodeRun({writes[0], writes[1]});
  bad_resolution[one.size()] = 7;  // the second write's resolution
  std::vector<RollupWrite> decoded;
  std::string error;
  CHECK_FALSE(DecodeRollupWrites(bad_resolution, &decoded, &error));
  CHECK(error == "rollup delta write 1: unknown resolution 7");
  CHECK(decoded.size() == 1);

  RollupWrite with_nul = writes.front();
  with_nul.segment = std::string("country=D\0E", 11);
  decoded.clear();
  CHECK_FALSE(DecodeRollupWrites(EncodeRun({with_nul}), &decoded, &error));
  CHECK(error.find("NUL") != std::string::npos);
}

}  // namespace
}  // namespace rta::storage
