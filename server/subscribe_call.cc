#include "server/subscribe_call.h"

#include <grpc/slice.h>

#include <algorithm>
#include <cstring>

#include "server/log.h"

namespace rta::server {
namespace {

// Update pacing (interval_ms) is about real elapsed time, not the injectable event clock.
int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

size_t VarintSize(size_t value) {
  size_t size = 1;
  for (; value >= 0x80; value >>= 7) ++size;
  return size;
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
      } else if (batch_pos_ < batch_.size()) {
        WriteNext();
      } else {
        sent_sequence_ = std::max(sent_sequence_, batch_sequence_);
        ReleaseBatch();
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
  if (!grpc::SerializationTraits<analytics::SubscriptionRequest>::Deserialize(&request_, &request)
           .ok()) {
    Finish({grpc::StatusCode::INVALID_ARGUMENT, "SubscriptionRequest could not be parsed"});
    return;
  }
  request_.Clear();
  grpc::Status status = MetricFilter::Build(request.metric_types(), request.windows(), &filter_);
  if (status.ok() && request.history_seconds() > MetricHistory::kMaxSeconds) {
    status = {grpc::StatusCode::INVALID_ARGUMENT,
              "history_seconds: at most 3600, got " + std::to_string(request.history_seconds())};
  }
  if (status.ok() && request.dashboard_id().size() > 256) {
    status = {grpc::StatusCode::INVALID_ARGUMENT, "dashboard_id: at most 256 bytes"};
  }
  if (!status.ok()) {
    Finish(status);
    return;
  }
  if (state_.subscribers.fetch_add(1, std::memory_order_relaxed) >= state_.config.max_subscribers) {
    state_.subscribers.fetch_sub(1, std::memory_order_relaxed);
    Finish({grpc::StatusCode::RESOURCE_EXHAUSTED,
            "server has reached max_subscribers (" + std::to_string(state_.config.max_subscribers) +
                "); retry later"});
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
                                {"history_seconds", std::to_string(request.history_seconds())}});
  BuildInitialBatch(request, state_.hub.Latest());
  WriteNext();
}

void SubscribeCall::BuildInitialBatch(const analytics::SubscriptionRequest& request,
                                      std::shared_ptr<const PublishedSnapshot> latest) {
  const agg::Snapshot& snapshot = *latest->snapshot;
  epoch_ = snapshot.epoch;
  const bool resumable = request.resume_epoch() != 0 && request.resume_epoch() == snapshot.epoch &&
                         request.resume_after_sequence() <= snapshot.sequence;
  const bool wants_resume = request.resume_epoch() != 0;
  const uint64_t since = resumable ? request.resume_after_sequence() : 0;
  std::vector<analytics::MetricUpdate> history;
  if (request.history_seconds() > 0) {
    state_.hub.history().Collect(filter_, request.history_seconds(), snapshot.epoch, &history);
  }
  own_messages_.reserve(history.size() + 2);  // the resume answer, history, the end marker
  analytics::MetricUpdate update;
  for (size_t i = 0; i < snapshot.points.size(); ++i) {
    const agg::MetricPoint& point = snapshot.points[i];
    if (!filter_.Matches(latest->metric_ids[i], point.window)) continue;
    if (resumable && point.changed_sequence <= since) continue;
    if (wants_resume && batch_.empty()) {
      // The first message says whether the resume worked; it is this subscriber's own copy.
      FillMetricUpdate(snapshot, point,
                       resumable ? analytics::UPDATE_KIND_DELTA : analytics::UPDATE_KIND_SNAPSHOT,
                       &update);
      update.set_recovered(resumable);
      AddOwnMessage(update);
      update.Clear();
      continue;
    }
    batch_.push_back(resumable ? &latest->delta_messages[i] : &latest->snapshot_messages[i]);
  }
  for (const analytics::MetricUpdate& h : history) AddOwnMessage(h);
  update.set_kind(analytics::UPDATE_KIND_SNAPSHOT_END);
  update.set_sequence(snapshot.sequence);
  update.set_epoch(snapshot.epoch);
  update.set_timestamp(snapshot.time_ms / 1000);
  update.set_timestamp_ms(snapshot.time_ms);
  update.set_recovered(resumable);
  AddOwnMessage(update);
  batch_sequence_ = snapshot.sequence;
  batch_source_ = std::move(latest);
  last_batch_ms_ = SteadyNowMs();
}

bool SubscribeCall::BuildDeltaBatch(const std::shared_ptr<const PublishedSnapshot>& latest,
                                    int64_t now_ms) {
  const agg::Snapshot& snapshot = *latest->snapshot;
  if (snapshot.sequence <= sent_sequence_ && snapshot.epoch == epoch_) return false;
  // Early ticks exist for push subscribers; everyone else takes their changes at the next
  // regular tick (batches are cumulative, so nothing is lost).
  if (!regular_tick_due_ && !push_on_change_) return false;
  if (now_ms - last_batch_ms_ < interval_ms_) return false;
  last_batch_ms_ = now_ms;
  regular_tick_due_ = false;
  const uint64_t skipped = missed_ticks_;
  missed_ticks_ = 0;
  if (skipped > 0) own_messages_.reserve(1);  // the first update carries the skipped count
  auto add = [&](size_t i) {
    const agg::MetricPoint& point = snapshot.points[i];
    if (!filter_.Matches(latest->metric_ids[i], point.window)) return;
    if (skipped > 0 && batch_.empty()) {
      analytics::MetricUpdate update;
      FillMetricUpdate(snapshot, point, analytics::UPDATE_KIND_DELTA, &update);
      update.set_skipped(skipped);
      AddOwnMessage(update);
      return;
    }
    batch_.push_back(&latest->delta_messages[i]);
  };
  if (snapshot.sequence == sent_sequence_ + 1) {
    for (uint32_t i : latest->changed_now) add(i);
  } else {
    for (size_t i = 0; i < snapshot.points.size(); ++i) {
      if (snapshot.points[i].changed_sequence > sent_sequence_) add(i);
    }
  }
  batch_sequence_ = snapshot.sequence;
  if (batch_.empty()) {
    sent_sequence_ = snapshot.sequence;
    return false;
  }
  batch_source_ = latest;
  return true;
}

void SubscribeCall::AddOwnMessage(const analytics::MetricUpdate& update) {
  // Never reallocates (the caller reserved), so the pointers already in batch_ stay valid.
  own_messages_.push_back(SerializeUpdate(update));
  batch_.push_back(&own_messages_.back());
}

void SubscribeCall::ReleaseBatch() {
  batch_pos_ = 0;
  batch_source_.reset();  // an old snapshot is freed as soon as its last subscriber is done
  // An initial batch with an hour of history can hold tens of thousands of entries; a
  // subscriber keeps only a steady-state batch's worth of capacity between ticks.
  constexpr size_t kKeptCapacity = 64;
  if (batch_.capacity() > kKeptCapacity) {
    std::vector<const SerializedUpdate*>().swap(batch_);
  } else {
    batch_.clear();
  }
  if (own_messages_.capacity() > 1) {
    std::vector<SerializedUpdate>().swap(own_messages_);
  } else {
    own_messages_.clear();
  }
}

void SubscribeCall::OnPublished(const std::shared_ptr<const PublishedSnapshot>& latest,
                                int64_t now_ms, bool regular) {
  if (done_ || finish_called_) return;
  if (regular) regular_tick_due_ = true;
  if (write_in_flight_ || batch_pos_ < batch_.size()) {
    if (write_in_flight_ &&
        std::chrono::steady_clock::now() - write_started_ >
            std::chrono::milliseconds(state_.config.slow_subscriber_timeout_ms)) {
      // Hard limit for a reader that stopped reading: its flow-control window is full.
      state_.metrics.AddSlowSubscriberDisconnect();
      LogWarn("subscriber_too_slow", {{"peer", context_.peer()}});
      context_.TryCancel();
      return;
    }
    if (regular || push_on_change_) {
      ++missed_ticks_;
      state_.metrics.AddUpdatesConflated(1);
    }
    return;
  }
  if (BuildDeltaBatch(latest, now_ms)) WriteNext();
}

void SubscribeCall::WriteNext() {
  // No buffer hint: a hinted write completes only once something flushes it, and with one
  // write in flight nothing else would.
  write_in_flight_ = true;
  write_started_ = std::chrono::steady_clock::now();
  ++pending_ops_;
  if (batched_) {
    WriteBatchMessage();
    return;
  }
  updates_in_flight_ = 1;
  writer_.Write(batch_[batch_pos_++]->buffer, &write_tag_);  // Write copies the reference
}

void SubscribeCall::WriteBatchMessage() {
  // One MetricUpdateBatch: each update is its field 1 on the wire (tag 0x0A, the length as a
  // varint, the serialized update), so the message is the updates' bytes with a few header
  // bytes between them, in one contiguous slice (cheaper for gRPC to frame than a slice per
  // update) allocated at its exact size.
  const size_t first = batch_pos_;
  size_t end = first;
  size_t message_size = 0;
  for (; end < batch_.size(); ++end) {
    const size_t length = batch_[end]->bytes.size();
    const size_t field_size = 1 + VarintSize(length) + length;
    if (end > first && message_size + field_size > kMaxBatchMessageBytes) break;
    message_size += field_size;
  }
  grpc_slice raw = grpc_slice_malloc(message_size);
  uint8_t* out = GRPC_SLICE_START_PTR(raw);
  for (; batch_pos_ < end; ++batch_pos_) {
    const grpc::Slice& update = batch_[batch_pos_]->bytes;
    *out++ = 0x0A;
    for (size_t rest = update.size();; rest >>= 7) {
      *out++ = static_cast<uint8_t>((rest & 0x7F) | (rest >= 0x80 ? 0x80 : 0));
      if (rest < 0x80) break;
    }
    std::memcpy(out, update.begin(), update.size());
    out += update.size();
  }
  updates_in_flight_ = end - first;
  grpc::Slice message(raw, grpc::Slice::STEAL_REF);
  writer_.Write(grpc::ByteBuffer(&message, 1), &write_tag_);  // Write takes its own reference
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
  ReleaseBatch();
  ++pending_ops_;
  writer_.Finish(status, &finish_tag_);
}

}  // namespace rta::server
