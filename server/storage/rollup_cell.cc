#include "server/storage/rollup_cell.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "server/aggregator/state_codec.h"

namespace rta::storage {
namespace {

// Format 3 writes every count as a varint and a sparse register's index as the gap from the
// previous one; formats 2 (fixed-width, with the precision) and 1 (fixed-width, precision 14
// always) are still read, so a store written by an older build keeps its history.
constexpr uint8_t kFormat = 3;
constexpr uint8_t kFormatFixedWidth = 2;
constexpr uint8_t kFormatFixedPrecision = 1;
enum VisitorForm : uint8_t { kNoVisitors = 0, kSparse = 1, kDense = 2 };
constexpr size_t kFixedSparseEntryBytes = 3;  // formats 1 and 2: a 2-byte index, a 1-byte rank
constexpr size_t kMinSparseEntryBytes = 2;    // format 3: a gap of at least 1 byte, the rank

bool KnownFormat(uint8_t format) {
  return format == kFormat || format == kFormatFixedWidth || format == kFormatFixedPrecision;
}

// The counters lead every format; fixed-width before format 3.
void ReadCounters(agg::detail::StateReader& reader, uint8_t format, RollupCounters* counters) {
  const bool varint = format == kFormat;
  auto count = [&] { return varint ? reader.VarU64() : reader.U64(); };
  counters->events = count();
  counters->page_views = count();
  counters->conversions = count();
  counters->sessions = count();
  counters->bounces = count();
  counters->revenue_units = varint ? reader.VarI64() : reader.I64();
}

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
  writer.VarU64(counters.events);
  writer.VarU64(counters.page_views);
  writer.VarU64(counters.conversions);
  writer.VarU64(counters.sessions);
  writer.VarU64(counters.bounces);
  writer.VarI64(counters.revenue_units);
  const std::vector<uint8_t>& registers = visitors_.registers();
  std::string sparse;
  agg::detail::StateWriter sparse_writer(&sparse);
  uint64_t used = 0;
  size_t previous = 0;
  for (size_t i = 0; i < registers.size() && sparse.size() < registers.size(); ++i) {
    if (registers[i] == 0) continue;
    sparse_writer.VarU64(used == 0 ? i : i - previous);
    sparse_writer.U8(registers[i]);
    previous = i;
    ++used;
  }
  if (used == 0) {
    writer.U8(kNoVisitors);
  } else if (sparse.size() < registers.size()) {
    writer.U8(kSparse);
    writer.U8(static_cast<uint8_t>(visitors_.precision()));
    writer.VarU64(used);
    writer.Raw(sparse.data(), sparse.size());
  } else {
    writer.U8(kDense);
    writer.U8(static_cast<uint8_t>(visitors_.precision()));
    writer.Raw(registers.data(), registers.size());
  }
  const bool has_page_loads = page_loads_ && !page_loads_->empty();
  writer.Bool(has_page_loads);
  if (has_page_loads) page_loads_->SaveCompact(writer);
  return out;
}

bool RollupCell::DecodeCounters(std::string_view bytes, RollupCounters* counters,
                                std::string* error) {
  agg::detail::StateReader reader(bytes);
  const uint8_t format = reader.U8();
  if (reader.ok() && !KnownFormat(format)) {
    *error = "rollup cell: unknown format " + std::to_string(format);
    return false;
  }
  ReadCounters(reader, format, counters);
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
  if (reader.ok() && !KnownFormat(format)) {
    return fail("unknown format " + std::to_string(format) + " (this build reads " +
                std::to_string(kFormatFixedPrecision) + " to " + std::to_string(kFormat) + ")");
  }
  const bool varint = format == kFormat;
  *cell = RollupCell();
  ReadCounters(reader, format, &cell->counters);
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
    const uint64_t used = varint ? reader.VarU64() : reader.U32();
    const size_t entry_bytes = varint ? kMinSparseEntryBytes : kFixedSparseEntryBytes;
    if (reader.ok() && (used == 0 || used > visitors.register_count() ||
                        used * entry_bytes > reader.remaining())) {
      return fail("sparse visitor registers: bad count " + std::to_string(used));
    }
    uint64_t index = 0;
    for (uint64_t n = 0; n < used && reader.ok(); ++n) {
      if (varint) {
        const uint64_t gap = reader.VarU64();
        if (n > 0 && gap == 0) return fail("sparse visitor registers out of order");
        index = n == 0 ? gap : index + std::min<uint64_t>(gap, visitors.register_count());
      } else {
        const size_t low = reader.U8();
        index = low | (size_t{reader.U8()} << 8);
      }
      const uint8_t rank = reader.U8();
      if (!reader.ok()) break;
      if (index >= visitors.register_count() || rank == 0 || rank > visitors.max_rank()) {
        return fail("sparse visitor register out of range");
      }
      visitors.RaiseRegister(static_cast<size_t>(index), rank);
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
    const bool loaded =
        varint ? cell->page_loads_->LoadCompact(reader) : cell->page_loads_->Load(reader);
    if (!loaded) return fail("");
  }
  if (!reader.ok()) return fail("");
  if (!reader.AtEnd()) return fail("trailing bytes");
  return true;
}

}  // namespace rta::storage
