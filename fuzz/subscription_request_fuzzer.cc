// Fuzz target: the SubscriptionRequest a dashboard sends, checked as the server checks it.
//
// Input: the request's wire bytes. They are deserialized the way SubscribeCall does it
// (grpc::SerializationTraits over the raw method's ByteBuffer) and checked by
// CheckSubscriptionRequest. An accepted request must give a filter that matches exactly the
// metrics and windows it named (all metrics when it named none; the server's default windows
// when it named no window) and the live segment's conditions it named, in order ("(none)" for an
// empty value); a refused one must have broken one of the rules the message names.
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "analytics.grpc.pb.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/quiet_protobuf.h"
#include "server/aggregator/aggregator.h"
#include "server/metric_filter.h"
#include "server/subscription_request.h"

namespace {

bool Named(const analytics::SubscriptionRequest& request, std::string_view metric) {
  if (request.metric_types().empty()) return true;
  for (const std::string& name : request.metric_types()) {
    if (name == metric) return true;
  }
  return false;
}

// `default_window`: what an empty list stands for (WINDOW_UNSPECIFIED: every window).
bool WindowWanted(const analytics::SubscriptionRequest& request, analytics::Window window,
                  analytics::Window default_window) {
  bool any = false;
  for (int w : request.windows()) {
    if (w == analytics::WINDOW_UNSPECIFIED) continue;
    any = true;
    if (w == window) return true;
  }
  return !any && (default_window == analytics::WINDOW_UNSPECIFIED || window == default_window);
}

bool AllKnown(const analytics::SubscriptionRequest& request) {
  for (const std::string& name : request.metric_types()) {
    if (rta::server::MetricId(name) < 0) return false;
  }
  for (int w : request.windows()) {
    if (!analytics::Window_IsValid(w)) return false;
  }
  return true;
}

// The live segment's filters: known dimensions, none twice, values of at most 256 bytes.
bool FiltersValid(const analytics::SubscriptionRequest& request) {
  std::vector<std::string> seen;
  for (const analytics::DimensionFilter& filter : request.filters()) {
    bool known = false;
    for (std::string_view name :
         {"country", "device", "page", "referrer", "utm_source", "utm_campaign", "event_type"}) {
      known = known || filter.dimension() == name;
    }
    if (!known || filter.value().size() > 256) return false;
    for (const std::string& earlier : seen) {
      if (earlier == filter.dimension()) return false;
    }
    seen.push_back(filter.dimension());
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  QuietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  grpc::Slice slice(data, size);
  grpc::ByteBuffer buffer(&slice, 1);
  analytics::SubscriptionRequest request;
  if (!grpc::SerializationTraits<analytics::SubscriptionRequest>::Deserialize(&buffer, &request)
           .ok()) {
    return 0;
  }

  // The server's --default-window, chosen by the input's length: each of 1m, 5m, 1h, total
  // and all (WINDOW_UNSPECIFIED here) gets exercised.
  constexpr analytics::Window kDefaults[] = {analytics::WINDOW_1M, analytics::WINDOW_5M,
                                             analytics::WINDOW_1H, analytics::WINDOW_TOTAL,
                                             analytics::WINDOW_UNSPECIFIED};
  const analytics::Window default_window = kDefaults[size % 5];
  const rta::server::WindowMask default_windows = default_window == analytics::WINDOW_UNSPECIFIED
                                                      ? rta::server::kAllWindows
                                                      : rta::server::WindowBit(default_window);
  rta::server::MetricFilter filter;
  std::vector<rta::agg::SegmentCondition> conditions;
  const std::string error =
      rta::server::CheckSubscriptionRequest(request, default_windows, &filter, &conditions);
  const bool acceptable =
      AllKnown(request) && request.history_seconds() <= rta::server::kMaxHistorySeconds &&
      request.dashboard_id().size() <= rta::server::kMaxDashboardIdBytes && FiltersValid(request);
  RTA_FUZZ_CHECK(error.empty() == acceptable);
  if (!error.empty()) return 0;

  RTA_FUZZ_CHECK(conditions.size() == static_cast<size_t>(request.filters_size()));
  for (size_t i = 0; i < conditions.size(); ++i) {
    const analytics::DimensionFilter& asked = request.filters(static_cast<int>(i));
    RTA_FUZZ_CHECK(rta::agg::kSegmentDimensions[conditions[i].dimension] == asked.dimension());
    RTA_FUZZ_CHECK(conditions[i].value == (asked.value().empty() ? "(none)" : asked.value()));
  }

  const auto names = rta::agg::Aggregator::MetricNames();
  for (size_t id = 0; id < names.size(); ++id) {
    for (int w = analytics::Window_MIN; w <= analytics::Window_MAX; ++w) {
      if (w == analytics::WINDOW_UNSPECIFIED) continue;
      const auto window = static_cast<analytics::Window>(w);
      const bool expected =
          Named(request, names[id]) && WindowWanted(request, window, default_window);
      RTA_FUZZ_CHECK(filter.Matches(static_cast<uint16_t>(id), window) == expected);
    }
  }
  return 0;
}
