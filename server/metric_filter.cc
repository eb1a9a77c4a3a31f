#include "server/metric_filter.h"

#include <cctype>
#include <utility>

#include "server/aggregator/aggregator.h"

namespace rta::server {

int MetricId(std::string_view name) {
  const auto names = agg::Aggregator::MetricNames();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

bool ParseDefaultWindows(std::string_view text, WindowMask* mask) {
  std::string name;
  for (char c : text) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name.starts_with("window_")) name.erase(0, 7);
  if (name == "all") {
    *mask = kAllWindows;
    return true;
  }
  static constexpr std::pair<std::string_view, analytics::Window> kNames[] = {
      {"1m", analytics::WINDOW_1M},
      {"5m", analytics::WINDOW_5M},
      {"1h", analytics::WINDOW_1H},
      {"total", analytics::WINDOW_TOTAL}};
  for (const auto& [known, window] : kNames) {
    if (name == known) {
      *mask = WindowBit(window);
      return true;
    }
  }
  return false;
}

grpc::Status MetricFilter::Build(const google::protobuf::RepeatedPtrField<std::string>& names,
                                 const google::protobuf::RepeatedField<int>& windows,
                                 WindowMask default_windows, MetricFilter* out) {
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
  WindowMask mask = 0;
  for (int window : windows) {
    if (window == analytics::WINDOW_UNSPECIFIED) continue;
    if (!analytics::Window_IsValid(window)) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "windows: unknown window " + std::to_string(window) +
                  "; valid: WINDOW_1M, WINDOW_5M, WINDOW_1H, WINDOW_TOTAL"};
    }
    mask |= WindowBit(static_cast<analytics::Window>(window));
  }
  filter.window_mask_ = mask == 0 ? default_windows : mask;
  *out = std::move(filter);
  return grpc::Status::OK;
}

}  // namespace rta::server
