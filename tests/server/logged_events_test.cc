// LoggedEventReader on the record kinds recovery and the history read back: a signal record
// (AnalyzeSession) reaches the signal callback with its signal and time and never the event
// one; a damaged one names its record.
#include "server/logged_events.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "server/storage/ingest_record.h"

namespace {

using rta::agg::SessionSignal;
using rta::server::LoggedEventReader;
namespace storage = rta::storage;

std::string SignalRecord(uint8_t signal, int64_t event_ms, std::string* message) {
  storage::EncodeSignalMessage(signal, event_ms, message);
  storage::IngestRecord record;
  record.kind = storage::RecordKind::kSignal;
  record.ingest_ms = event_ms + 5;
  record.message = *message;
  std::string bytes;
  storage::EncodeIngestRecord(record, &bytes);
  return bytes;
}

}  // namespace

TEST_CASE("a signal record reads back as its signal and time and never as an event",
          "[server][durability]") {
  std::string message;
  const std::string bytes = SignalRecord(static_cast<uint8_t>(SessionSignal::kCartAbandonment),
                                         1'700'000'000'123, &message);
  LoggedEventReader reader;
  storage::IngestRecord record;
  std::string why;
  int events = 0;
  std::vector<std::pair<SessionSignal, int64_t>> signals;
  const auto apply = [&](const analytics::EventData&, int64_t) { ++events; };
  REQUIRE(reader.Read(7, bytes, &record, apply, &why, [&](SessionSignal signal, int64_t event_ms) {
    signals.emplace_back(signal, event_ms);
  }));
  CHECK(record.kind == storage::RecordKind::kSignal);
  CHECK(record.ingest_ms == 1'700'000'000'128);
  CHECK(events == 0);
  REQUIRE(signals.size() == 1);
  CHECK(signals[0].first == SessionSignal::kCartAbandonment);
  CHECK(signals[0].second == 1'700'000'000'123);

  // The history's reader passes no signal callback: the record is read and skipped.
  CHECK(reader.Read(7, bytes, &record, apply, &why));
  CHECK(events == 0);
}

TEST_CASE("a damaged signal record is refused and names its record", "[server][durability]") {
  LoggedEventReader reader;
  storage::IngestRecord record;
  std::string why;
  const auto apply = [](const analytics::EventData&, int64_t) {};
  int signals = 0;
  const auto count = [&](SessionSignal, int64_t) { ++signals; };
  std::string message;
  SECTION("a signal this version does not know") {
    CHECK_FALSE(reader.Read(9, SignalRecord(3, 1000, &message), &record, apply, &why, count));
    CHECK(why == "log record 9: its message does not parse");
  }
  SECTION("a message of the wrong length") {
    storage::IngestRecord short_record;
    short_record.kind = storage::RecordKind::kSignal;
    short_record.message = "12345678";
    std::string bytes;
    storage::EncodeIngestRecord(short_record, &bytes);
    CHECK_FALSE(reader.Read(11, bytes, &record, apply, &why, count));
    CHECK(why == "log record 11: its message does not parse");
  }
  SECTION("a record kind beyond the known ones") {
    std::string bytes = SignalRecord(0, 1000, &message);
    bytes[1] = 6;  // the kind byte, after the version
    CHECK_FALSE(reader.Read(12, bytes, &record, apply, &why, count));
    CHECK_THAT(why, Catch::StartsWith("log record 12: "));
  }
  CHECK(signals == 0);
}
