#pragma once

#include <google/protobuf/repeated_field.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <string>
#include <vector>

#include "analytics.pb.h"

namespace rta::server {

// Which series a subscription or query wants: a set of metric ids (index in
// agg::Aggregator::MetricNames()) and a set of windows. Immutable once built.
class MetricFilter {
 public:
  // Empty names or windows mean all. An unknown metric name or window gets INVALID_ARGUMENT with
  // a message that lists the valid ones.
  static grpc::Status Build(const google::protobuf::RepeatedPtrField<std::string>& names,
                            const google::protobuf::RepeatedField<int>& windows, MetricFilter* out);

  bool Matches(uint16_t metric_id, analytics::Window window) const {
    return (all_metrics_ || (metric_id < metrics_.size() && metrics_[metric_id])) &&
           (window_mask_ & (1u << window)) != 0;
  }

 private:
  bool all_metrics_ = true;
  std::vector<bool> metrics_;
  uint32_t window_mask_ = ~0u;
};

// Index of a metric name in agg::Aggregator::MetricNames(), or -1.
int MetricId(std::string_view name);

}  // namespace rta::server
