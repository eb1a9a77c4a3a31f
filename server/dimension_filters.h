#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <string>
#include <vector>

#include "analytics.pb.h"
#include "server/aggregator/live_segment.h"

namespace rta::server {

// Reads the `filters` of a RangeQuery or a SubscriptionRequest: each names a known dimension
// (agg::kSegmentDimensions, the same list as the history's), no dimension twice (conditions
// are ANDed), a value of at most agg::kSegmentMaxValueBytes bytes; an empty value means "no
// value" (agg::kSegmentNoneValue). On success fills *out in request order and returns "";
// otherwise returns the INVALID_ARGUMENT message, naming the field ("filters[1].dimension: ...").
// `what_keeps` ends the value-length message ("the history keeps", "live segments compare").
std::string ParseDimensionFilters(
    const google::protobuf::RepeatedPtrField<analytics::DimensionFilter>& filters,
    std::string_view what_keeps, std::vector<agg::SegmentCondition>* out);

// "country, device, page, ...", for messages.
std::string DimensionList();

}  // namespace rta::server
