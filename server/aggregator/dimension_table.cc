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

void DimensionTable::Save(StateWriter& out) const {
  out.U32(cap_);
  out.U32(admitted_);
  out.I64(other_index_);
  out.U64(values_.size());
  for (const std::string& value : values_) out.String(value);
  out.U64(index_.size());
  index_.ForEach([&](uint64_t hash, uint32_t index) {
    out.U64(hash);
    out.U32(index);
  });
}

bool DimensionTable::Load(StateReader& in) {
  if (in.U32() != cap_) return in.Fail("checkpoint: dimension cardinality cap differs");
  const uint32_t admitted = in.U32();
  const int64_t other_index = in.I64();
  // Every admitted value, plus __other__ and a client's literal "__other__".
  const size_t n = in.Count(sizeof(uint64_t), uint64_t{cap_} + 1);
  std::vector<std::string> values;
  values.reserve(n);
  for (size_t i = 0; i < n && in.ok(); ++i) values.emplace_back(in.String(kMaxValueBytes));
  const size_t indexed = in.Count(sizeof(uint64_t) + sizeof(uint32_t), n);
  FlatMap<uint32_t> index;
  for (size_t i = 0; i < indexed && in.ok(); ++i) {
    const uint64_t hash = in.U64();
    const uint32_t at = in.U32();
    if (hash == 0 || at >= n) return in.Fail("corrupt checkpoint: dimension index");
    *index.FindOrInsert(hash).first = at;
  }
  if (!in.ok()) return false;
  if (admitted > cap_ || admitted != indexed || other_index < -1 ||
      other_index >= static_cast<int64_t>(n)) {
    return in.Fail("corrupt checkpoint: dimension table counts");
  }
  admitted_ = admitted;
  other_index_ = other_index;
  index_ = std::move(index);
  values_ = std::move(values);
  return true;
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
