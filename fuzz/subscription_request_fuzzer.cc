// Fuzz target: the SubscriptionRequest a dashboard sends, checked as the server checks it.
//
// Input: the request's wire bytes. They are deserialized the way SubscribeCall does it
// (grpc::SerializationTraits over the raw method's ByteBuffer) and checked by
// CheckSubscriptionRequest. An accepted request must give a filter that matches exactly the
// metrics and windows it named (all of them when it named none); a refused one must have broken
// one of the rules the message names.
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

bool WindowWanted(const analytics::SubscriptionRequest& request, analytics::Window window) {
  bool any = false;
  for (int w : request.windows()) {
    if (w == analytics::WINDOW_UNSPECIFIED) continue;
    any = true;
    if (w == window) return true;
  }
  return !any;
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

  rta::server::MetricFilter filter;
  const std::string error = rta::server::CheckSubscriptionRequest(request, &filter);
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
      const bool expected = Named(request, names[id]) && WindowWanted(request, window);
      RTA_FUZZ_CHECK(filter.Matches(static_cast<uint16_t>(id), window) == expected);
    }
  }
  return 0;
}
