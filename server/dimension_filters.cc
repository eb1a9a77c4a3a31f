#include "server/dimension_filters.h"

#include "server/storage/rollup_accumulator.h"

namespace rta::server {

std::string DimensionList() {
  std::string out;
  for (std::string_view name : agg::kSegmentDimensions) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string ParseDimensionFilters(
    const google::protobuf::RepeatedPtrField<analytics::DimensionFilter>& filters,
    std::string_view what_keeps, std::vector<agg::SegmentCondition>* out) {
  out->clear();
  for (int i = 0; i < filters.size(); ++i) {
    const analytics::DimensionFilter& filter = filters[i];
    const std::string field = "filters[" + std::to_string(i) + "]";
    const int index = storage::RollupDimensionIndex(filter.dimension());
    if (index < 0) {
      return field + ".dimension: unknown dimension '" + filter.dimension() + "' (one of " +
             DimensionList() + ")";
    }
    const auto dimension = static_cast<size_t>(index);
    for (size_t j = 0; j < out->size(); ++j) {
      if ((*out)[j].dimension == dimension) {
        return field + ".dimension: '" + filter.dimension() + "' is already filtered by filters[" +
               std::to_string(j) + "] (conditions are ANDed: one per dimension)";
      }
    }
    if (filter.value().size() > agg::kSegmentMaxValueBytes) {
      return field + ".value: " + std::to_string(filter.value().size()) + " bytes; " +
             std::string(what_keeps) + " values of at most " +
             std::to_string(agg::kSegmentMaxValueBytes) + " bytes";
    }
    out->push_back(
        {dimension, filter.value().empty() ? std::string(agg::kSegmentNoneValue) : filter.value()});
  }
  return "";
}

}  // namespace rta::server
