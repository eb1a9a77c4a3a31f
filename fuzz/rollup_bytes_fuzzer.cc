// Fuzz target: what the history reads back from its RocksDB store, which a disk, an older
// build or a bug may have damaged: a rollup cell (RollupCell::Decode, in every stored format)
// and a session of the writer's table (RollupAccumulator::RestoreSession); and what a cluster
// node decodes from another node's partial records: a rollup run (DecodeRollupRun: cells, and
// the owner's admitted values and session changes).
//
// Input: one selector byte (0 = a cell, 1 = a session, 2 = a rollup run), then the bytes. Each
// is accepted or refused with a message, never a crash. A run that decodes encodes entry by
// entry to bytes that decode to the same entries. A cell that decodes encodes (in the
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
#include "server/storage/rollup_delta.h"

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

void CheckRun(std::string_view bytes) {
  using rta::storage::RollupStateEntry;
  rta::storage::RollupRun run;
  std::string error;
  const bool decoded = rta::storage::DecodeRollupRun(bytes, &run, &error);
  RTA_FUZZ_CHECK(decoded == error.empty());
  if (!decoded) return;
  std::string again;
  for (const rta::storage::RollupWrite& write : run.writes) {
    rta::storage::AppendRollupWrite(write, &again);
  }
  for (const RollupStateEntry& entry : run.state) {
    switch (entry.kind) {
      case RollupStateEntry::Kind::kValueAdmitted:
        rta::storage::AppendRollupValueAdmitted(entry.dimension, entry.bytes, &again);
        break;
      case RollupStateEntry::Kind::kSessionForgotten:
        rta::storage::AppendRollupSessionForgotten(entry.session_hash, &again);
        break;
      case RollupStateEntry::Kind::kSessionState:
        rta::storage::AppendRollupSessionState(entry.session_hash, entry.bytes, &again);
        break;
    }
  }
  rta::storage::RollupRun back;
  RTA_FUZZ_CHECK(rta::storage::DecodeRollupRun(again, &back, &error));
  RTA_FUZZ_CHECK(back.writes.size() == run.writes.size());
  for (size_t i = 0; i < run.writes.size(); ++i) {
    RTA_FUZZ_CHECK(back.writes[i].segment == run.writes[i].segment);
    RTA_FUZZ_CHECK(back.writes[i].time_s == run.writes[i].time_s);
    RTA_FUZZ_CHECK(back.writes[i].cell.counters == run.writes[i].cell.counters);
  }
  RTA_FUZZ_CHECK(back.state.size() == run.state.size());
  for (size_t i = 0; i < run.state.size(); ++i) {
    RTA_FUZZ_CHECK(back.state[i].kind == run.state[i].kind);
    RTA_FUZZ_CHECK(back.state[i].dimension == run.state[i].dimension);
    RTA_FUZZ_CHECK(back.state[i].session_hash == run.state[i].session_hash);
    RTA_FUZZ_CHECK(back.state[i].bytes == run.state[i].bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 0) {
    CheckCell(bytes);
  } else if (data[0] == 1) {
    CheckSession(bytes);
  } else if (data[0] == 2) {
    CheckRun(bytes);
  }
  return 0;
}
