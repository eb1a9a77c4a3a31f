#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "server/aggregator/quantile_sketch.h"
#include "server/storage/visitor_sketch.h"

namespace rta::storage {

// Revenue is kept in fixed point in rollups: a sum of integers is the same in any merge order,
// so a stored day equals the exact sum of its events however its minutes were merged (a double
// sum is not associative). 1e-4 currency units; an int64 holds up to about 9e14 currency units.
inline constexpr double kRevenueUnitsPerCurrency = 10'000.0;
int64_t RevenueUnits(double revenue);

// The additive KPIs of one rollup cell.
struct RollupCounters {
  uint64_t events = 0;
  uint64_t page_views = 0;
  uint64_t conversions = 0;  // purchase + signup, as the live windows count them
  uint64_t sessions = 0;     // sessions started in the bucket
  uint64_t bounces = 0;      // of those, sessions with a single page view
  int64_t revenue_units = 0;

  void Add(const RollupCounters& other);
  double revenue() const { return static_cast<double>(revenue_units) / kRevenueUnitsPerCurrency; }
  bool operator==(const RollupCounters&) const = default;
};

// Every KPI of one segment in one time bucket (a minute, an hour or a day; see
// docs/design/history-and-segments.md): additive counters, unique visitors as a HyperLogLog,
// page-load times as the quantile sketch. Merge() is associative and commutative (counters add,
// registers take the maximum, sketch bins add), which is what lets a late event's delta, or a
// minute's cell, be folded into any coarser cell in any order.
//
// The sketches are allocated on first use: a cell of a small segment often has no page loads.
// A cell of the whole traffic counts visitors at VisitorSketch::kTotalsPrecision, a segment's
// cell at kSegmentPrecision (the accumulator says which); merging the two keeps the lower.
// Not thread-safe.
class RollupCell {
 public:
  RollupCell() = default;
  explicit RollupCell(int visitor_precision) : visitors_(visitor_precision) {}
  RollupCell(const RollupCell& other);
  RollupCell& operator=(const RollupCell& other);
  RollupCell(RollupCell&&) noexcept = default;
  RollupCell& operator=(RollupCell&&) noexcept = default;

  RollupCounters counters;

  void AddVisitor(uint64_t visitor_hash);
  // `ms` must be finite and >= 0 (validated at ingest).
  void AddPageLoad(double ms);
  void Merge(const RollupCell& other);

  double UniqueVisitors() const { return visitors_.Estimate(); }
  const VisitorSketch& visitors() const { return visitors_; }
  // 0 when the cell has no page loads.
  double PageLoadQuantile(double q) const { return page_loads_ ? page_loads_->Quantile(q) : 0.0; }
  uint64_t page_load_count() const { return page_loads_ ? page_loads_->count() : 0; }
  bool empty() const;

  // The stored form: a format byte, the counters, the visitors' precision and registers, the
  // page-load bins. Counts are varints: most of a cell's numbers (an hour of a small segment,
  // a quantile bin) are below 128, and fixed 8-byte counts were half of the stored hours. The
  // registers are written sparse (the gap to the previous non-zero register and its rank,
  // usually 2 bytes) when that is smaller than the dense array (4 or 16 KiB): an hour of a small
  // segment has a few hundred visitors, so its cell takes well under a kilobyte. Older builds'
  // fixed-width cells (format 2, and format 1, which always had precision 14) are still read.
  // Why a format of our own: the same reasons as the checkpoint's
  // (server/aggregator/state_codec.h); the bytes are RocksDB values, and RocksDB compresses the
  // blocks they are in.
  std::string Encode() const;
  // Fails (with a message naming what was wrong) on bytes that are not a cell of this format;
  // `cell` is then unspecified.
  static bool Decode(std::string_view bytes, RollupCell* cell, std::string* error);
  // Only the counters, which lead the stored form: what ranking a breakdown needs, without
  // building the sketches (a dense HyperLogLog is 16 KiB to fill and merge).
  static bool DecodeCounters(std::string_view bytes, RollupCounters* counters, std::string* error);

 private:
  VisitorSketch visitors_;
  std::unique_ptr<agg::QuantileSketch> page_loads_;
};

}  // namespace rta::storage
