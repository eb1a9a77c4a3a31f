#pragma once

#include <google/protobuf/repeated_field.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "analytics.pb.h"

namespace rta::server {

// A set of windows, one bit per analytics::Window value.
using WindowMask = uint32_t;
inline constexpr WindowMask kAllWindows = ~0u;
inline constexpr WindowMask WindowBit(analytics::Window window) { return 1u << window; }

// The windows an empty `windows` list stands for (--default-window). One window by default
// (WINDOW_TOTAL): a client written before windows existed, one that prints each update as
// "name = value", then gets one value per metric per tick instead of four different numbers
// under one name. "1m", "5m", "1h", "total" (or WINDOW_1M ... WINDOW_TOTAL, any case), or "all"
// for every window. False for anything else.
bool ParseDefaultWindows(std::string_view text, WindowMask* mask);

// Which series a subscription or query wants: a set of metric ids (index in
// agg::Aggregator::MetricNames()) and a set of windows. Immutable once built.
class MetricFilter {
 public:
  // Empty names mean all metrics; empty windows (or only WINDOW_UNSPECIFIED) mean
  // `default_windows`. An unknown metric name or window gets INVALID_ARGUMENT with a message that
  // lists the valid ones.
  static grpc::Status Build(const google::protobuf::RepeatedPtrField<std::string>& names,
                            const google::protobuf::RepeatedField<int>& windows,
                            WindowMask default_windows, MetricFilter* out);

  bool Matches(uint16_t metric_id, analytics::Window window) const {
    return (all_metrics_ || (metric_id < metrics_.size() && metrics_[metric_id])) &&
           (window_mask_ & (1u << window)) != 0;
  }

 private:
  bool all_metrics_ = true;
  std::vector<bool> metrics_;
  WindowMask window_mask_ = kAllWindows;
};

// Index of a metric name in agg::Aggregator::MetricNames(), or -1.
int MetricId(std::string_view name);

}  // namespace rta::server
