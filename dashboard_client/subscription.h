#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "analytics.grpc.pb.h"
#include "dashboard_client/render.h"
#include "clients/common/client_channel.h"

namespace rta::dashboard {

struct SubscriptionOptions {
  client::ChannelOptions channel;
  analytics::SubscriptionRequest request;  // metrics, windows, interval, history, dashboard id
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{10'000};
};

// What the UI thread takes from the subscription at each frame.
struct SubscriptionStatus {
  LinkState link = LinkState::kConnecting;
  std::string message;  // why we are not connected, in words ("" when connected)
  std::chrono::steady_clock::time_point retry_at;  // for kReconnecting
  // Set when the updates that follow start from a full snapshot: the caller resets its model.
  bool reset = false;
};

// A subscription (SubscribeMetricBatches: one message per tick) that keeps itself alive, on its
// own thread.
//
// When the stream ends (the server went away, a network error), it reconnects with exponential
// backoff and jitter, and resubscribes naming the last epoch and sequence it saw, so the server
// can answer with only what changed (recovered = true) or a full snapshot (then `reset` tells
// the caller to start over). A refusal that retrying cannot fix (UNAUTHENTICATED,
// PERMISSION_DENIED, INVALID_ARGUMENT) waits for ReconnectNow(). Updates are queued for the UI
// thread, which drains it every frame (a full snapshot drops what was queued before it).
// Thread-safe. The destructor cancels the stream and joins the thread.
class Subscription {
 public:
  Subscription(std::shared_ptr<grpc::Channel> channel, SubscriptionOptions options);
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Moves the updates received since the last call into *updates, in order.
  SubscriptionStatus Drain(std::vector<analytics::MetricUpdate>* updates);
  // Drops the current stream (if any) and connects again at once.
  void ReconnectNow();

 private:
  void Run();
  // One stream, from subscribe to its end; returns its status.
  grpc::Status RunStream(bool* received_any);
  void SetStatus(LinkState link, const std::string& message,
                 std::chrono::steady_clock::time_point retry_at = {});
  // Waits until `until`, a stop or a manual reconnect; false when stopping.
  bool WaitUntil(std::chrono::steady_clock::time_point until);

  std::unique_ptr<analytics::AnalyticsService::Stub> stub_;
  SubscriptionOptions options_;
  uint64_t resume_epoch_ = 0;     // the run thread's
  uint64_t resume_sequence_ = 0;  // the run thread's

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                       // guarded by mutex_
  bool reconnect_now_ = false;                  // guarded by mutex_
  grpc::ClientContext* context_ = nullptr;      // the open stream's, guarded by mutex_
  std::vector<analytics::MetricUpdate> queue_;  // guarded by mutex_
  SubscriptionStatus status_;                   // guarded by mutex_
  std::thread thread_;
};

// What failed, for DescribeFailure's words.
enum class CallKind { kSubscription, kQuery };
// A status in words for people: "server unreachable at 127.0.0.1:50051 (UNAVAILABLE)", "the
// server refused the query (INVALID_ARGUMENT: ...)".
std::string DescribeFailure(const grpc::Status& status, const std::string& servers,
                            CallKind kind = CallKind::kSubscription);

}  // namespace rta::dashboard
