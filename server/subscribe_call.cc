#include "server/subscribe_call.h"

#include <utility>

#include "server/log.h"
#include "server/message_parse.h"
#include "server/subscription_request.h"

namespace rta::server {
namespace {

// Update pacing (interval_ms) is about real elapsed time, not the injectable event clock.
int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SubscribeCall::SubscribeCall(ServiceState& state, Worker& worker, bool batched)
    : state_(state), worker_(worker), batched_(batched) {
  context_.AsyncNotifyWhenDone(&done_tag_);
  ++pending_ops_;
  if (batched_) {
    state_.service.RequestSubscribeMetricBatches(&context_, &request_, &writer_, worker_.cq(),
                                                 worker_.cq(), &request_tag_);
  } else {
    state_.service.RequestSubscribeMetrics(&context_, &request_, &writer_, worker_.cq(),
                                           worker_.cq(), &request_tag_);
  }
}

void SubscribeCall::OnEvent(int op, bool ok) {
  --pending_ops_;
  switch (op) {
    case kRequest:
      if (!ok) {  // the server is shutting down; the call never started, so no done tag comes
        delete this;
        return;
      }
      ++pending_ops_;  // the done tag is armed now that the call started
      if (!state_.shutting_down.load(std::memory_order_relaxed)) {
        new SubscribeCall(state_, worker_, batched_);
      }
      Start();
      break;
    case kWrite:
      write_in_flight_ = false;
      if (!ok) break;  // the stream is broken; the done tag follows
      state_.metrics.AddUpdatesSent(updates_in_flight_);
      if (finish_requested_) {
        Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
      } else if (batch_.HasMessage()) {
        WriteNext();
      } else {
        batch_.Complete();
        OnPublished(state_.hub.Latest(), SteadyNowMs(), /*regular=*/false);
      }
      break;
    case kFinish:
      break;
    case kDone:
      done_ = true;
      if (context_.IsCancelled()) final_code_ = grpc::StatusCode::CANCELLED;
      if (registered_) {
        worker_.RemoveSubscriber(this);
        registered_ = false;
        state_.subscribers.fetch_sub(1, std::memory_order_relaxed);
        state_.metrics.subscribers().Decrement();
        LogInfo("subscriber_left", {{"peer", context_.peer()},
                                    {"code", std::to_string(static_cast<int>(final_code_))}});
      }
      booking_.Close(state_, final_code_);
      break;
  }
  MaybeDelete();
}

void SubscribeCall::MaybeDelete() {
  if (done_ && pending_ops_ == 0) delete this;
}

void SubscribeCall::Start() {
  const Method method = batched_ ? Method::kSubscribeMetricBatches : Method::kSubscribeMetrics;
  if (grpc::Status status = booking_.Open(state_, method, context_); !status.ok()) {
    Finish(status);
    return;
  }
  if (state_.shutting_down.load(std::memory_order_relaxed)) {
    // Started after this worker handled the shutdown notification: it would never be told.
    Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
    return;
  }
  analytics::SubscriptionRequest request;
  std::string scratch;
  std::string why;
  if (!ParseRequestMessage(request_, &request, &scratch, &why)) {
    state_.metrics.AddUnparseableMessage(method);
    Finish({grpc::StatusCode::INVALID_ARGUMENT, "not a valid SubscriptionRequest: " + why});
    return;
  }
  request_.Clear();
  std::vector<agg::SegmentCondition> conditions;
  if (std::string error =
          CheckSubscriptionRequest(request, state_.default_windows, &filter_, &conditions);
      !error.empty()) {
    Finish({grpc::StatusCode::INVALID_ARGUMENT, error});
    return;
  }
  if (grpc::Status status = AdmitSubscriber(state_, std::move(conditions), &segment_);
      !status.ok()) {
    Finish(status);
    return;
  }
  registered_ = true;
  state_.metrics.subscribers().Increment();
  push_on_change_ = request.push_on_change();
  worker_.AddSubscriber(this, push_on_change_);
  interval_ms_ = request.interval_ms();
  LogInfo("subscriber_joined", {{"peer", context_.peer()},
                                {"dashboard_id", request.dashboard_id()},
                                {"metrics", std::to_string(request.metric_types_size())},
                                {"history_seconds", std::to_string(request.history_seconds())},
                                {"filters", std::to_string(request.filters_size())}});
  std::shared_ptr<const PublishedSnapshot> latest = Latest(state_.hub.Latest());
  if (segment_ != nullptr && latest->sequence() == 0) {
    // A segment opens at the next tick: its first snapshot, not an empty one, is the initial
    // snapshot (OnPublished sends it).
    pending_request_ = std::make_unique<analytics::SubscriptionRequest>(std::move(request));
    return;
  }
  BuildInitialBatch(request, std::move(latest));
  WriteNext();
}

void SubscribeCall::BuildInitialBatch(const analytics::SubscriptionRequest& request,
                                      std::shared_ptr<const PublishedSnapshot> latest) {
  // A live segment keeps no per-second history: it sends none.
  static const MetricHistory kNoHistory;
  batch_.StartInitial({filter_, interval_ms_, push_on_change_, batched_}, request,
                      std::move(latest), segment_ ? kNoHistory : state_.hub.history(),
                      SteadyNowMs());
}

void SubscribeCall::OnPublished(const std::shared_ptr<const PublishedSnapshot>& latest,
                                int64_t now_ms, bool regular) {
  if (done_ || finish_called_) return;
  if (pending_request_ != nullptr) {
    std::shared_ptr<const PublishedSnapshot> segment_latest = Latest(latest);
    if (segment_latest->sequence() == 0) return;
    BuildInitialBatch(*pending_request_, std::move(segment_latest));
    pending_request_.reset();
    WriteNext();
    return;
  }
  batch_.NoteTick(regular);
  if (write_in_flight_ || batch_.HasMessage()) {
    if (write_in_flight_ &&
        std::chrono::steady_clock::now() - write_started_ >
            std::chrono::milliseconds(state_.config.slow_subscriber_timeout_ms)) {
      // Hard limit for a reader that stopped reading: its flow-control window is full.
      state_.metrics.AddSlowSubscriberDisconnect();
      LogWarn("subscriber_too_slow", {{"peer", context_.peer()}});
      context_.TryCancel();
      return;
    }
    if (batch_.NoteMissed(regular)) state_.metrics.AddUpdatesConflated(1);
    return;
  }
  if (batch_.StartDelta(Latest(latest), now_ms)) WriteNext();
}

std::shared_ptr<const PublishedSnapshot> SubscribeCall::Latest(
    const std::shared_ptr<const PublishedSnapshot>& global) const {
  return segment_ ? segment_->Latest() : global;
}

void SubscribeCall::WriteNext() {
  // No buffer hint: a hinted write completes only once something flushes it, and with one
  // write in flight nothing else would.
  write_in_flight_ = true;
  write_started_ = std::chrono::steady_clock::now();
  ++pending_ops_;
  // Write takes its own reference to the message's bytes (shared ones are not copied).
  writer_.Write(batch_.NextMessage(&updates_in_flight_), &write_tag_);
}

void SubscribeCall::OnShutdown() {
  if (done_ || finish_called_) return;
  if (write_in_flight_) {
    finish_requested_ = true;  // finish once the write in flight completes
    return;
  }
  Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
}

void SubscribeCall::Finish(const grpc::Status& status) {
  finish_called_ = true;
  final_code_ = status.error_code();
  batch_.Release();
  ++pending_ops_;
  writer_.Finish(status, &finish_tag_);
}

}  // namespace rta::server
