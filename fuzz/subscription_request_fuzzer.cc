// Fuzz target: the SubscriptionRequest a dashboard sends, checked as the server checks it.
//
// Input: the request's wire bytes. They are deserialized the way SubscribeCall does it
// (grpc::SerializationTraits over the raw method's ByteBuffer) and checked by
// CheckSubscriptionRequest. An accepted request must give a filter that matches exactly the
// metrics and windows it named (all metrics when it named none; the server's default windows
// when it named no window); a refused one must have broken one of the rules the message names.
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <string>

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
  const std::string error =
      rta::server::CheckSubscriptionRequest(request, default_windows, &filter);
  const bool acceptable = AllKnown(request) &&
                          request.history_seconds() <= rta::server::kMaxHistorySeconds &&
                          request.dashboard_id().size() <= rta::server::kMaxDashboardIdBytes;
  RTA_FUZZ_CHECK(error.empty() == acceptable);
  if (!error.empty()) return 0;

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
