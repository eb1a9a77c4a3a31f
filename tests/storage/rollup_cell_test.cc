#include "server/storage/rollup_cell.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "server/aggregator/state_codec.h"
#include "tests/storage/storage_test_util.h"

namespace rta::storage {
namespace {

struct CellEvent {
  uint64_t visitor;
  bool page_view;
  bool conversion;
  double revenue;
  double page_load_ms;  // < 0: none
};

std::vector<CellEvent> MakeEvents(size_t count, uint64_t visitors, uint32_t seed) {
  std::mt19937_64 random(seed);
  std::vector<CellEvent> events;
  for (size_t i = 0; i < count; ++i) {
    CellEvent e;
    e.visitor = random() % visitors;
    e.page_view = random() % 2 == 0;
    e.conversion = random() % 10 == 0;
    e.revenue = e.conversion ? static_cast<double>(random() % 100'000) / 100.0 : 0.0;
    e.page_load_ms = e.page_view ? 50.0 + static_cast<double>(random() % 5'000) : -1.0;
    events.push_back(e);
  }
  return events;
}

void Fold(const CellEvent& e, RollupCell* cell) {
  ++cell->counters.events;
  cell->counters.page_views += e.page_view;
  cell->counters.conversions += e.conversion;
  cell->counters.revenue_units += RevenueUnits(e.revenue);
  cell->AddVisitor(testing::MixedHash(e.visitor));
  if (e.page_load_ms >= 0) cell->AddPageLoad(e.page_load_ms);
}

RollupCell RoundTrip(const RollupCell& cell) {
  RollupCell decoded;
  std::string error;
  REQUIRE(RollupCell::Decode(cell.Encode(), &decoded, &error));
  return decoded;
}

void RequireSameCell(const RollupCell& a, const RollupCell& b) {
  REQUIRE(a.counters == b.counters);
  REQUIRE(a.UniqueVisitors() == b.UniqueVisitors());
  REQUIRE(a.page_load_count() == b.page_load_count());
  for (double q : {0.5, 0.95, 0.99}) REQUIRE(a.PageLoadQuantile(q) == b.PageLoadQuantile(q));
}

TEST_CASE("a cell merged from parts in any order equals the cell of all the events", "[rollup]") {
  const std::vector<CellEvent> events = MakeEvents(30'000, 8'000, 11);
  RollupCell whole;
  for (const CellEvent& e : events) Fold(e, &whole);
  std::vector<RollupCell> parts(3);
  for (size_t i = 0; i < events.size(); ++i) Fold(events[i], &parts[i % 3]);

  RollupCell forward = parts[0];
  forward.Merge(parts[1]);
  forward.Merge(parts[2]);
  RollupCell backward = parts[2];
  RollupCell first_two = parts[1];
  first_two.Merge(parts[0]);
  backward.Merge(first_two);
  RequireSameCell(forward, whole);
  RequireSameCell(backward, whole);
  // Revenue in fixed point: the exact sum of the cents, whatever the order.
  int64_t cents = 0;
  for (const CellEvent& e : events) cents += std::llround(e.revenue * 100);
  REQUIRE(whole.counters.revenue_units == cents * 100);
  // The visitor estimate is within the sketch's bound (0.81% standard error; 4 sigma here).
  std::vector<bool> seen(8'000);
  double distinct = 0;
  for (const CellEvent& e : events) {
    if (!seen[e.visitor]) ++distinct;
    seen[e.visitor] = true;
  }
  REQUIRE(whole.UniqueVisitors() == Approx(distinct).epsilon(0.033));
}

TEST_CASE("a cell survives its stored form, sparse or dense, and small cells stay small",
          "[rollup]") {
  SECTION("empty") {
    const RollupCell empty;
    REQUIRE(empty.empty());
    const RollupCell back = RoundTrip(empty);
    REQUIRE(back.empty());
    REQUIRE(empty.Encode().size() < 64);
  }
  SECTION("a few hundred visitors: sparse registers") {
    RollupCell cell;
    for (const CellEvent& e : MakeEvents(1'000, 300, 5)) Fold(e, &cell);
    RequireSameCell(RoundTrip(cell), cell);
    // About 2 bytes per register in use (a gap under 128 and the rank), and a byte or two per
    // page-load bin in the range used (about 460 bins between 50 ms and 5 s).
    REQUIRE(cell.Encode().size() < 300 * 2 + 2 * 460);
    RollupCell visitors_only;
    for (uint64_t v = 0; v < 300; ++v) visitors_only.AddVisitor(testing::MixedHash(v));
    // Gaps average 16384 / 300 = 55; about one in ten is 128 or more and takes two bytes.
    REQUIRE(visitors_only.Encode().size() < 300 * 9 / 4 + 32);
  }
  SECTION("tens of thousands of visitors: dense registers") {
    RollupCell cell;
    for (uint64_t v = 0; v < 50'000; ++v) cell.AddVisitor(testing::MixedHash(v));
    const std::string bytes = cell.Encode();
    REQUIRE(bytes.size() > 16'384);
    REQUIRE(bytes.size() < 16'384 + 128);
    RequireSameCell(RoundTrip(cell), cell);
  }
  SECTION("a segment's cell: precision 12, dense at 4 KiB") {
    RollupCell cell(VisitorSketch::kSegmentPrecision);
    for (uint64_t v = 0; v < 50'000; ++v) cell.AddVisitor(testing::MixedHash(v));
    const std::string bytes = cell.Encode();
    REQUIRE(bytes.size() > 4'096);
    REQUIRE(bytes.size() < 4'096 + 128);
    const RollupCell back = RoundTrip(cell);
    REQUIRE(back.visitors().precision() == VisitorSketch::kSegmentPrecision);
    RequireSameCell(back, cell);
    REQUIRE(back.UniqueVisitors() == Approx(50'000).epsilon(4 * 0.0163));
  }
  SECTION("negative revenue (a refund) and large counts") {
    RollupCell cell;
    cell.counters.revenue_units = RevenueUnits(-12.5);
    cell.counters.events = uint64_t{1} << 40;
    const RollupCell back = RoundTrip(cell);
    REQUIRE(back.counters.revenue() == -12.5);
    REQUIRE(back.counters.events == uint64_t{1} << 40);
  }
}

TEST_CASE("a stored cell that is damaged is an error that says so, never a crash", "[rollup]") {
  RollupCell cell;
  for (const CellEvent& e : MakeEvents(500, 200, 3)) Fold(e, &cell);
  const std::string bytes = cell.Encode();
  std::string error;
  RollupCell out;
  SECTION("every truncation") {
    for (size_t size = 0; size < bytes.size(); ++size) {
      error.clear();
      REQUIRE_FALSE(RollupCell::Decode(std::string_view(bytes).substr(0, size), &out, &error));
      REQUIRE(error.rfind("rollup cell: ", 0) == 0);
    }
  }
  SECTION("an unknown format") {
    std::string other = bytes;
    other[0] = 9;
    REQUIRE_FALSE(RollupCell::Decode(other, &out, &error));
    REQUIRE(error.find("unknown format 9") != std::string::npos);
  }
  SECTION("trailing bytes") {
    REQUIRE_FALSE(RollupCell::Decode(bytes + "x", &out, &error));
    REQUIRE(error.find("trailing bytes") != std::string::npos);
  }
  SECTION("a sparse register out of range, or out of order") {
    // format 3, six zero counters, sparse, precision 14, one register: at gap 16384 (a 3-byte
    // varint), rank 1; no page loads.
    std::string damaged =
        "\x03" + std::string(6, '\0') + "\x01\x0E\x01\x80\x80\x01\x01" + std::string(1, '\0');
    REQUIRE_FALSE(RollupCell::Decode(damaged, &out, &error));
    REQUIRE(error.find("sparse visitor register out of range") != std::string::npos);
    // The same with two registers, the second at a gap of 0 (the same index again).
    damaged = "\x03" + std::string(6, '\0') + "\x01\x0E\x02\x05\x01" + std::string(1, '\0') +
              "\x01" + std::string(1, '\0');
    REQUIRE_FALSE(RollupCell::Decode(damaged, &out, &error));
    REQUIRE(error.find("sparse visitor registers out of order") != std::string::npos);
    damaged[12] = 1;  // a gap of 1: index 6
    REQUIRE(RollupCell::Decode(damaged, &out, &error));
    REQUIRE(out.visitors().Register(5) == 1);
    REQUIRE(out.visitors().Register(6) == 1);
  }
  SECTION("a dense register out of range, or a precision out of range") {
    RollupCell dense(VisitorSketch::kSegmentPrecision);
    for (uint64_t v = 0; v < 20'000; ++v) dense.AddVisitor(testing::MixedHash(v));
    std::string damaged = dense.Encode();
    // format, 6 counters (0: a byte each), the form byte, the precision: then the registers.
    const size_t precision = 1 + 6 + 1;
    REQUIRE(damaged[precision] == 12);
    damaged[precision + 1 + 100] = 60;  // precision 12's highest rank is 53
    REQUIRE_FALSE(RollupCell::Decode(damaged, &out, &error));
    REQUIRE(error.find("dense visitor register out of range") != std::string::npos);
    damaged = dense.Encode();
    damaged[precision] = 40;
    REQUIRE_FALSE(RollupCell::Decode(damaged, &out, &error));
    REQUIRE(error.find("visitor precision 40 out of range") != std::string::npos);
  }
}

TEST_CASE("a cell stored by the first format (precision 14 implied) still reads back", "[rollup]") {
  // Format 1, as the build before per-cell precision wrote it: counters, then sparse registers
  // without a precision byte.
  std::string old;
  old.push_back(1);
  for (uint64_t counter : {7, 3, 1, 2, 1}) old.append(reinterpret_cast<const char*>(&counter), 8);
  const int64_t revenue_units = 250'000;
  old.append(reinterpret_cast<const char*>(&revenue_units), 8);
  old.push_back(1);  // sparse
  const uint32_t used = 2;
  old.append(reinterpret_cast<const char*>(&used), 4);
  for (const char entry : {'\x10', '\x00', '\x03', '\xFF', '\x3F', '\x01'}) old.push_back(entry);
  old.push_back(0);  // no page loads
  RollupCell cell;
  std::string error;
  REQUIRE(RollupCell::Decode(old, &cell, &error));
  REQUIRE(cell.counters.events == 7);
  REQUIRE(cell.counters.revenue() == 25.0);
  REQUIRE(cell.visitors().precision() == 14);
  REQUIRE(cell.visitors().Register(0x10) == 3);
  REQUIRE(cell.visitors().Register(0x3FFF) == 1);
  REQUIRE(cell.UniqueVisitors() == Approx(2).epsilon(0.01));
  RollupCounters counters;
  REQUIRE(RollupCell::DecodeCounters(old, &counters, &error));
  REQUIRE(counters.bounces == 1);
}

TEST_CASE("a cell stored by the fixed-width format 2 still reads back", "[rollup]") {
  // Format 2, as the build before varints wrote it: fixed-width counters, then sparse registers
  // with the precision, then the page loads in the checkpoint's fixed-width form.
  std::string old;
  agg::detail::StateWriter writer(&old);
  writer.U8(2);
  for (uint64_t counter : {9, 4, 2, 3, 1}) writer.U64(counter);
  writer.I64(RevenueUnits(-3.5));
  writer.U8(1);   // sparse
  writer.U8(12);  // precision
  writer.U32(2);
  for (const uint8_t entry : {0x10, 0x00, 0x03, 0xFF, 0x0F, 0x02}) writer.U8(entry);
  writer.Bool(true);
  agg::QuantileSketch page_loads;
  for (double ms : {120.0, 480.0, 480.0, 2'000.0}) page_loads.Add(ms);
  page_loads.Save(writer);
  RollupCell cell;
  std::string error;
  REQUIRE(RollupCell::Decode(old, &cell, &error));
  REQUIRE(cell.counters.events == 9);
  REQUIRE(cell.counters.revenue() == -3.5);
  REQUIRE(cell.visitors().precision() == 12);
  REQUIRE(cell.visitors().Register(0x10) == 3);
  REQUIRE(cell.visitors().Register(0xFFF) == 2);
  REQUIRE(cell.page_load_count() == 4);
  REQUIRE(cell.PageLoadQuantile(0.5) == page_loads.Quantile(0.5));
  // Written back, it is format 3 and reads back the same.
  const std::string current = cell.Encode();
  REQUIRE(current[0] == 3);
  REQUIRE(current.size() < old.size() / 2);
  RequireSameCell(RoundTrip(cell), cell);
  RollupCounters counters;
  REQUIRE(RollupCell::DecodeCounters(old, &counters, &error));
  REQUIRE(counters.sessions == 3);
}

TEST_CASE("revenue in fixed point adds exactly where doubles do not", "[rollup]") {
  int64_t units = 0;
  double sum = 0;
  for (int i = 0; i < 10; ++i) {
    units += RevenueUnits(0.1);
    sum += 0.1;
  }
  REQUIRE(units == RevenueUnits(1.0));
  REQUIRE(sum != 1.0);  // why: the double sum is off in its last bit
  RollupCounters counters;
  counters.revenue_units = units;
  REQUIRE(counters.revenue() == 1.0);
}

}  // namespace
}  // namespace rta::storage
