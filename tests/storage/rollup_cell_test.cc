#include "server/storage/rollup_cell.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace rta::storage {
namespace {

uint64_t VisitorHash(uint64_t visitor) {  // splitmix64: uniformly mixed bits, as HLL needs
  uint64_t z = visitor + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

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
  cell->AddVisitor(VisitorHash(e.visitor));
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
    // 3 bytes per register in use, plus the page-load bins in use.
    REQUIRE(cell.Encode().size() < 300 * 3 + 8'192);
    RollupCell visitors_only;
    for (uint64_t v = 0; v < 300; ++v) visitors_only.AddVisitor(VisitorHash(v));
    REQUIRE(visitors_only.Encode().size() < 1'000);
  }
  SECTION("tens of thousands of visitors: dense registers") {
    RollupCell cell;
    for (uint64_t v = 0; v < 50'000; ++v) cell.AddVisitor(VisitorHash(v));
    const std::string bytes = cell.Encode();
    REQUIRE(bytes.size() > 16'384);
    REQUIRE(bytes.size() < 16'384 + 128);
    RequireSameCell(RoundTrip(cell), cell);
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
  SECTION("a sparse register out of range") {
    RollupCell one;
    one.AddVisitor(VisitorHash(1));
    std::string damaged = one.Encode();
    // format, 6 counters, the form byte, the count: then the first entry's index (2 bytes).
    const size_t entry = 1 + 6 * 8 + 1 + 4;
    damaged[entry + 1] = static_cast<char>(0x7F);  // index >= 16384
    REQUIRE_FALSE(RollupCell::Decode(damaged, &out, &error));
    REQUIRE(error.find("sparse visitor register out of range") != std::string::npos);
  }
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
