#include "server/metric_filter.h"

#include "server/aggregator/aggregator.h"

namespace rta::server {

int MetricId(std::string_view name) {
  const auto names = agg::Aggregator::MetricNames();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

grpc::Status MetricFilter::Build(const google::protobuf::RepeatedPtrField<std::string>& names,
                                 const google::protobuf::RepeatedField<int>& windows,
                                 MetricFilter* out) {
  MetricFilter filter;
  if (!names.empty()) {
    filter.all_metrics_ = false;
    filter.metrics_.assign(agg::Aggregator::MetricNames().size(), false);
    for (const std::string& name : names) {
      const int id = MetricId(name);
      if (id < 0) {
        std::string valid;
        for (std::string_view known : agg::Aggregator::MetricNames()) {
          if (!valid.empty()) valid += ", ";
          valid += known;
        }
        return {grpc::StatusCode::INVALID_ARGUMENT,
                "metric_types: unknown metric '" + name.substr(0, 100) + "'; valid: " + valid};
      }
      filter.metrics_[static_cast<size_t>(id)] = true;
    }
  }
  uint32_t mask = 0;
  for (int window : windows) {
    if (window == analytics::WINDOW_UNSPECIFIED) continue;
    if (!analytics::Window_IsValid(window)) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "windows: unknown window " + std::to_string(window) +
                  "; valid: WINDOW_1M, WINDOW_5M, WINDOW_1H, WINDOW_TOTAL"};
    }
    mask |= 1u << window;
  }
  filter.window_mask_ = mask == 0 ? ~0u : mask;
  *out = std::move(filter);
  return grpc::Status::OK;
}

}  // namespace rta::server
