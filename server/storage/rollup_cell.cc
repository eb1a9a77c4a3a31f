#include "server/storage/rollup_cell.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "server/aggregator/state_codec.h"

namespace rta::storage {
namespace {

// Format 2 stores the visitors' precision after their form; format 1 (precision 14 always) is
// still read, so a store written by an older build keeps its history.
constexpr uint8_t kFormat = 2;
constexpr uint8_t kFormatFixedPrecision = 1;
enum VisitorForm : uint8_t { kNoVisitors = 0, kSparse = 1, kDense = 2 };
constexpr size_t kSparseEntryBytes = 3;  // an index of up to 16 bits in 2 bytes, the rank in 1

}  // namespace

int64_t RevenueUnits(double revenue) {
  return static_cast<int64_t>(std::llround(revenue * kRevenueUnitsPerCurrency));
}

void RollupCounters::Add(const RollupCounters& other) {
  events += other.events;
  page_views += other.page_views;
  conversions += other.conversions;
  sessions += other.sessions;
  bounces += other.bounces;
  revenue_units += other.revenue_units;
}

RollupCell::RollupCell(const RollupCell& other)
    : counters(other.counters), visitors_(other.visitors_) {
  if (other.page_loads_) page_loads_ = std::make_unique<agg::QuantileSketch>(*other.page_loads_);
}

RollupCell& RollupCell::operator=(const RollupCell& other) {
  if (this != &other) *this = RollupCell(other);
  return *this;
}

void RollupCell::AddVisitor(uint64_t visitor_hash) { visitors_.Add(visitor_hash); }

void RollupCell::AddPageLoad(double ms) {
  if (!page_loads_) page_loads_ = std::make_unique<agg::QuantileSketch>();
  page_loads_->Add(ms);
}

void RollupCell::Merge(const RollupCell& other) {
  counters.Add(other.counters);
  visitors_.Merge(other.visitors_);
  if (other.page_loads_) {
    if (!page_loads_) page_loads_ = std::make_unique<agg::QuantileSketch>();
    page_loads_->Merge(*other.page_loads_);
  }
}

bool RollupCell::empty() const {
  return counters == RollupCounters{} && visitors_.IsEmpty() &&
         (!page_loads_ || page_loads_->empty());
}

std::string RollupCell::Encode() const {
  std::string out;
  agg::detail::StateWriter writer(&out);
  writer.U8(kFormat);
  writer.U64(counters.events);
  writer.U64(counters.page_views);
  writer.U64(counters.conversions);
  writer.U64(counters.sessions);
  writer.U64(counters.bounces);
  writer.I64(counters.revenue_units);
  const std::vector<uint8_t>& registers = visitors_.registers();
  const size_t used = static_cast<size_t>(
      std::count_if(registers.begin(), registers.end(), [](uint8_t r) { return r != 0; }));
  if (used == 0) {
    writer.U8(kNoVisitors);
  } else if (used * kSparseEntryBytes < registers.size()) {
    writer.U8(kSparse);
    writer.U8(static_cast<uint8_t>(visitors_.precision()));
    writer.U32(static_cast<uint32_t>(used));
    for (size_t i = 0; i < registers.size(); ++i) {
      if (registers[i] == 0) continue;
      writer.U8(static_cast<uint8_t>(i & 0xFF));
      writer.U8(static_cast<uint8_t>(i >> 8));
      writer.U8(registers[i]);
    }
  } else {
    writer.U8(kDense);
    writer.U8(static_cast<uint8_t>(visitors_.precision()));
    writer.Raw(registers.data(), registers.size());
  }
  const bool has_page_loads = page_loads_ && !page_loads_->empty();
  writer.Bool(has_page_loads);
  if (has_page_loads) page_loads_->Save(writer);
  return out;
}

bool RollupCell::DecodeCounters(std::string_view bytes, RollupCounters* counters,
                                std::string* error) {
  agg::detail::StateReader reader(bytes);
  const uint8_t format = reader.U8();
  if (reader.ok() && format != kFormat && format != kFormatFixedPrecision) {
    *error = "rollup cell: unknown format " + std::to_string(format);
    return false;
  }
  counters->events = reader.U64();
  counters->page_views = reader.U64();
  counters->conversions = reader.U64();
  counters->sessions = reader.U64();
  counters->bounces = reader.U64();
  counters->revenue_units = reader.I64();
  if (!reader.ok()) {
    *error = "rollup cell: " + reader.error();
    return false;
  }
  return true;
}

bool RollupCell::Decode(std::string_view bytes, RollupCell* cell, std::string* error) {
  agg::detail::StateReader reader(bytes);
  auto fail = [&](std::string_view what) {
    *error = "rollup cell: ";
    error->append(reader.ok() ? std::string(what) : reader.error());
    return false;
  };
  const uint8_t format = reader.U8();
  if (reader.ok() && format != kFormat && format != kFormatFixedPrecision) {
    return fail("unknown format " + std::to_string(format) + " (this build reads " +
                std::to_string(kFormatFixedPrecision) + " and " + std::to_string(kFormat) + ")");
  }
  *cell = RollupCell();
  cell->counters.events = reader.U64();
  cell->counters.page_views = reader.U64();
  cell->counters.conversions = reader.U64();
  cell->counters.sessions = reader.U64();
  cell->counters.bounces = reader.U64();
  cell->counters.revenue_units = reader.I64();
  const uint8_t form = reader.U8();
  if (!reader.ok()) return fail("");
  if (form != kNoVisitors && form != kSparse && form != kDense) {
    return fail("unknown visitor form " + std::to_string(form));
  }
  if (form != kNoVisitors) {
    const int precision =
        format == kFormatFixedPrecision ? VisitorSketch::kTotalsPrecision : reader.U8();
    if (reader.ok() &&
        (precision < VisitorSketch::kMinPrecision || precision > VisitorSketch::kMaxPrecision)) {
      return fail("visitor precision " + std::to_string(precision) + " out of range");
    }
    cell->visitors_ = VisitorSketch(precision);
  }
  VisitorSketch& visitors = cell->visitors_;
  if (form == kSparse) {
    const uint32_t used = reader.U32();
    if (reader.ok() && (used == 0 || used > visitors.register_count() ||
                        used * kSparseEntryBytes > reader.remaining())) {
      return fail("sparse visitor registers: bad count " + std::to_string(used));
    }
    for (uint32_t n = 0; n < used && reader.ok(); ++n) {
      const size_t low = reader.U8();
      const size_t index = low | (size_t{reader.U8()} << 8);
      const uint8_t rank = reader.U8();
      if (!reader.ok()) break;
      if (index >= visitors.register_count() || rank == 0 || rank > visitors.max_rank()) {
        return fail("sparse visitor register out of range");
      }
      visitors.RaiseRegister(index, rank);
    }
  } else if (form == kDense && reader.ok()) {
    std::vector<uint8_t> dense(visitors.register_count());
    if (reader.Raw(dense.data(), dense.size()) && !visitors.LoadDense(std::move(dense))) {
      return fail("dense visitor register out of range");
    }
  }
  const bool has_page_loads = reader.Bool();
  if (reader.ok() && has_page_loads) {
    cell->page_loads_ = std::make_unique<agg::QuantileSketch>();
    if (!cell->page_loads_->Load(reader)) return fail("");
  }
  if (!reader.ok()) return fail("");
  if (!reader.AtEnd()) return fail("trailing bytes");
  return true;
}

}  // namespace rta::storage
