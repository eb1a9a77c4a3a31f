#include "server/aggregator/dimension_table.h"

#include "server/aggregator/metric_catalog.h"

namespace rta::agg::detail {

uint32_t DimensionTable::OtherIndex() {
  if (other_index_ < 0) {
    other_index_ = static_cast<int64_t>(values_.size());
    values_.emplace_back(kOtherValue);
  }
  return static_cast<uint32_t>(other_index_);
}

uint32_t DimensionTable::Resolve(uint64_t hash, std::string_view value, bool* folded) {
  *folded = false;
  if (const uint32_t* index = index_.Find(hash)) return *index;
  if (value == kOtherValue) return OtherIndex();
  if (admitted_ >= cap_) {
    *folded = true;
    return OtherIndex();
  }
  ++admitted_;
  const auto index = static_cast<uint32_t>(values_.size());
  values_.emplace_back(value);
  *index_.FindOrInsert(hash).first = index;
  return index;
}

}  // namespace rta::agg::detail
