// Fuzz target: what the history reads back from its RocksDB store, which a disk, an older
// build or a bug may have damaged: a rollup cell (RollupCell::Decode, in every stored format)
// and a session of the writer's table (RollupAccumulator::RestoreSession).
//
// Input: one selector byte (0 = a cell, 1 = a session), then the stored bytes. Either is
// accepted or refused with a message, never a crash. A cell that decodes encodes (in the
// current format) to bytes that decode to the same cell, and its counters alone
// (DecodeCounters) agree with the whole decode. A session that is restored can go on (an event
// folded into it) and is stored again in a form that reads back.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "server/storage/rollup_accumulator.h"
#include "server/storage/rollup_cell.h"

namespace {

bool SameNumber(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

void CheckCell(std::string_view bytes) {
  rta::storage::RollupCell cell;
  std::string error;
  const bool decoded = rta::storage::RollupCell::Decode(bytes, &cell, &error);
  RTA_FUZZ_CHECK(decoded == error.empty());
  if (!decoded) return;
  rta::storage::RollupCounters counters;
  RTA_FUZZ_CHECK(rta::storage::RollupCell::DecodeCounters(bytes, &counters, &error));
  RTA_FUZZ_CHECK(counters == cell.counters);

  const std::string again = cell.Encode();
  rta::storage::RollupCell back;
  RTA_FUZZ_CHECK(rta::storage::RollupCell::Decode(again, &back, &error));
  RTA_FUZZ_CHECK(back.counters == cell.counters);
  RTA_FUZZ_CHECK(back.visitors().precision() == cell.visitors().precision() ||
                 cell.visitors().IsEmpty());
  RTA_FUZZ_CHECK(SameNumber(back.UniqueVisitors(), cell.UniqueVisitors()));
  RTA_FUZZ_CHECK(back.page_load_count() == cell.page_load_count());
  for (const double q : {0.0, 0.5, 0.99, 1.0}) {
    RTA_FUZZ_CHECK(SameNumber(back.PageLoadQuantile(q), cell.PageLoadQuantile(q)));
  }
  RTA_FUZZ_CHECK(back.Encode() == again);
}

void CheckSession(std::string_view bytes) {
  rta::storage::RollupAccumulator accumulator({});
  std::string error;
  const bool restored = accumulator.RestoreSession(1, bytes, &error);
  RTA_FUZZ_CHECK(restored == error.empty());
  RTA_FUZZ_CHECK(accumulator.session_count() == (restored ? 1u : 0u));
  if (!restored) return;
  // The session goes on (a page view of the same session), and what is stored of it then
  // reads back.
  rta::storage::RollupEvent event;
  event.event_ms = 1'800'000'000'000;
  event.ingest_ms = event.event_ms;
  event.kind = rta::storage::RollupEvent::Kind::kPageView;
  event.session_hash = 1;
  accumulator.Add(event);
  const auto changes = accumulator.TakeSessionChanges();
  RTA_FUZZ_CHECK(changes.states.size() == 1);
  rta::storage::RollupAccumulator again({});
  RTA_FUZZ_CHECK(again.RestoreSession(1, changes.states[0].second, &error));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 0) {
    CheckCell(bytes);
  } else if (data[0] == 1) {
    CheckSession(bytes);
  }
  return 0;
}
