#include "server/ingest_call.h"

#include "server/worker.h"

namespace rta::server {

void EventTally::Reject(RejectReason reason, const analytics::EventData& event,
                        std::string_view field, const std::string& reason_text) {
  ++rejected_[static_cast<size_t>(reason)];
  response_.set_rejected(response_.rejected() + 1);
  if (response_.errors_size() >= kMaxErrors) return;
  std::string message = "event #" + std::to_string(position_);
  if (!event.event_id().empty()) message += " (id " + event.event_id().substr(0, 128) + ")";
  message.append(": ").append(field).append(": ").append(reason_text);
  response_.add_errors(std::move(message));
}

void EventTally::Ingest(ServiceState& state, const analytics::EventData& event) {
  const ServerConfig& config = state.config;
  if (static_cast<uint32_t>(event.properties_size()) > config.max_event_properties) {
    Reject(RejectReason::kTooLarge, event, "properties",
           std::to_string(event.properties_size()) + " entries, limit " +
               std::to_string(config.max_event_properties));
  } else if (const size_t bytes = event.ByteSizeLong(); bytes > config.max_event_bytes) {
    Reject(RejectReason::kTooLarge, event, "event",
           std::to_string(bytes) + " bytes, limit " + std::to_string(config.max_event_bytes));
  } else {
    agg::IngestResult result = state.aggregator.Ingest(event);
    switch (result.outcome) {
      case agg::IngestOutcome::kAccepted:
        ++accepted_;
        response_.set_accepted(response_.accepted() + 1);
        break;
      case agg::IngestOutcome::kDuplicate:
        ++duplicates_;
        response_.set_duplicates(response_.duplicates() + 1);
        break;
      case agg::IngestOutcome::kInvalid:
        Reject(RejectReason::kInvalid, event, result.field, result.reason);
        break;
      case agg::IngestOutcome::kTooOld:
        Reject(RejectReason::kTooOld, event, result.field, result.reason);
        break;
      case agg::IngestOutcome::kInFuture:
        Reject(RejectReason::kInFuture, event, result.field, result.reason);
        break;
    }
  }
  ++position_;
}

void EventTally::FlushMetrics(ServerMetrics& metrics) {
  metrics.AddIngested(accepted_, duplicates_);
  accepted_ = duplicates_ = 0;
  for (size_t i = 0; i < kRejectReasonCount; ++i) {
    metrics.AddRejected(static_cast<RejectReason>(i), rejected_[i]);
    rejected_[i] = 0;
  }
}

template <typename Message>
IngestCall<Message>::IngestCall(ServiceState& state, Worker& worker)
    : state_(state), worker_(worker) {
  Request();
}

template <typename Message>
void IngestCall<Message>::Request() {
  context_.AsyncNotifyWhenDone(&done_tag_);
  ++pending_ops_;
  if constexpr (kMethod == Method::kReportEventBatches) {
    state_.service.RequestReportEventBatches(&context_, &reader_, worker_.cq(), worker_.cq(),
                                             &request_tag_);
  } else {
    state_.service.RequestReportEvent(&context_, &reader_, worker_.cq(), worker_.cq(),
                                      &request_tag_);
  }
}

template <typename Message>
void IngestCall<Message>::OnEvent(int op, bool ok) {
  --pending_ops_;
  switch (op) {
    case kRequest:
      if (!ok) {  // shutting down before the call started: no done tag will come
        delete this;
        return;
      }
      ++pending_ops_;  // done tag
      if (!state_.shutting_down.load(std::memory_order_relaxed)) {
        new IngestCall<Message>(state_, worker_);
      }
      stream_number_ = state_.ingest_streams_started.fetch_add(1, std::memory_order_relaxed) + 1;
      if (grpc::Status status = booking_.Open(state_, kMethod); !status.ok()) {
        Finish(status);
        break;
      }
      ++pending_ops_;
      reader_.Read(&message_, &read_tag_);
      break;
    case kRead:
      if (!ok) {  // the client half-closed (or the call broke): answer with the tally
        if (!done_) Finish(grpc::Status::OK);
        break;
      }
      if (grpc::Status status = Consume(); !status.ok()) {
        Finish(status);
        break;
      }
      ++pending_ops_;
      reader_.Read(&message_, &read_tag_);
      break;
    case kFinish:
      break;
    case kDone:
      done_ = true;
      if (context_.IsCancelled() && !finish_called_) final_code_ = grpc::StatusCode::CANCELLED;
      booking_.Close(state_, final_code_);
      break;
  }
  if (done_ && pending_ops_ == 0) delete this;
}

template <typename Message>
grpc::Status IngestCall<Message>::Consume() {
  ++messages_;
  if constexpr (kMethod == Method::kReportEventBatches) {
    if (static_cast<uint32_t>(message_.events_size()) > state_.config.max_batch_events) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "events: batch #" + std::to_string(messages_ - 1) + " has " +
                  std::to_string(message_.events_size()) + " events, limit " +
                  std::to_string(state_.config.max_batch_events)};
    }
    for (const analytics::EventData& event : message_.events()) tally_.Ingest(state_, event);
  } else {
    tally_.Ingest(state_, message_);
  }
  tally_.FlushMetrics(state_.metrics);
  if (state_.push_subscribers.load(std::memory_order_relaxed) > 0) state_.request_early_tick();
  const uint32_t fail_every = state_.config.fail_every_nth_ingest_stream_for_test;
  if (fail_every > 0 && messages_ == 1 && stream_number_ % fail_every == 0) {
    return {grpc::StatusCode::UNAVAILABLE, "injected stream failure (test only)"};
  }
  return grpc::Status::OK;
}

template <typename Message>
void IngestCall<Message>::Finish(const grpc::Status& status) {
  finish_called_ = true;
  final_code_ = status.error_code();
  ++pending_ops_;
  if (status.ok()) {
    reader_.Finish(tally_.response(), status, &finish_tag_);
  } else {
    reader_.FinishWithError(status, &finish_tag_);
  }
}

template class IngestCall<analytics::EventData>;
template class IngestCall<analytics::EventBatch>;

}  // namespace rta::server
