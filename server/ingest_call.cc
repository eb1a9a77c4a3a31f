#include "server/ingest_call.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "server/aggregator/event_validation.h"
#include "server/aggregator/utf8.h"
#include "server/ingest_journal.h"
#include "server/message_parse.h"
#include "server/worker.h"

namespace rta::server {

void EventTally::Reject(RejectReason reason, const analytics::EventData& event,
                        std::string_view field, const std::string& reason_text) {
  ++rejected_[static_cast<size_t>(reason)];
  response_.set_rejected(response_.rejected() + 1);
  if (response_.errors_size() >= kMaxErrors) return;
  std::string message = "event #" + std::to_string(position_);
  if (!event.event_id().empty()) {
    // Cut at a character boundary: a response with a split UTF-8 character would not parse.
    message.append(" (id ").append(agg::CutAtUtf8Boundary(event.event_id(), 128)).append(")");
  }
  message.append(": ").append(field).append(": ").append(reason_text);
  response_.add_errors(std::move(message));
}

namespace {

// Cluster mode: the checks Aggregator::Ingest makes before it counts; de-duplication and
// counting happen at the partition's owner, which reads the event from the stream.
agg::IngestResult ValidateForCluster(const ServiceState& state, const analytics::EventData& event) {
  agg::IngestResult result;
  if (!agg::ValidateEventId(event, &result)) return result;
  const agg::AggregatorConfig& config = state.config.aggregator;
  const agg::ValidationLimits limits{config.max_event_age_seconds * 1000,
                                     config.max_event_future_seconds * 1000,
                                     config.backfill_max_age_seconds * 1000};
  int64_t event_ms = 0;
  agg::EventKind kind = agg::EventKind::kOther;
  const int64_t now_ms = state.clock.NowMs();
  if (agg::ValidateEvent(event, now_ms, limits, &event_ms, &kind, &result)) {
    // Older than the live windows: the owners count it into the history only.
    result.backfill = now_ms - event_ms > limits.max_event_age_ms;
  }
  return result;
}

}  // namespace

bool EventTally::Ingest(ServiceState& state, const analytics::EventData& event) {
  const ServerConfig& config = state.config;
  bool accepted = false;
  if (static_cast<uint32_t>(event.properties_size()) > config.max_event_properties) {
    Reject(RejectReason::kTooLarge, event, "properties",
           std::to_string(event.properties_size()) + " entries, limit " +
               std::to_string(config.max_event_properties));
  } else if (const size_t bytes = event.ByteSizeLong(); bytes > config.max_event_bytes) {
    Reject(RejectReason::kTooLarge, event, "event",
           std::to_string(bytes) + " bytes, limit " + std::to_string(config.max_event_bytes));
  } else {
    agg::IngestResult result =
        state.cluster ? ValidateForCluster(state, event) : state.aggregator.Ingest(event);
    switch (result.outcome) {
      case agg::IngestOutcome::kAccepted:
        accepted = true;
        ++accepted_;
        backfilled_ += result.backfill;
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
  return accepted;
}

void EventTally::RejectUnreadable(const analytics::EventData& partial, std::string_view reason) {
  // "value: expected a number, got string": the field is what comes before the first ": ".
  const size_t colon = reason.find(": ");
  const std::string_view field =
      colon == std::string_view::npos ? "event" : reason.substr(0, colon);
  const std::string_view text = colon == std::string_view::npos ? reason : reason.substr(colon + 2);
  Reject(RejectReason::kInvalid, partial, field, std::string(text));
  ++position_;
}

void EventTally::FlushMetrics(ServerMetrics& metrics) {
  metrics.AddIngested(accepted_, duplicates_, backfilled_);
  accepted_ = duplicates_ = backfilled_ = 0;
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
void IngestCall<Message>::StartRead() {
  ++pending_ops_;
  reader_.Read(&request_, &read_tag_);
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
      if (grpc::Status status = booking_.Open(state_, kMethod, context_); !status.ok()) {
        Finish(status);
        break;
      }
      if (state_.shutting_down.load(std::memory_order_relaxed)) {
        // Matched just as shutdown began: nothing read yet, so the client can safely go elsewhere.
        Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
        break;
      }
      ++pending_ops_;
      idle_.Arm(worker_.cq(), &idle_tag_, state_.config.stream_idle_timeout_ms);
      StartRead();
      break;
    case kRead:
      if (finish_called_) break;  // the stream was ended while this read was pending
      if (!ok) {  // the client half-closed, or the call broke (then the done tag says CANCELLED)
        Finish(grpc::Status::OK);
        break;
      }
      idle_.Touch();
      if (grpc::Status status = Consume(); !status.ok()) {
        Finish(status);
        break;
      }
      StartRead();
      break;
    case kIdle:
      if (!ok) {
        idle_.OnCancelled();
        break;
      }
      if (done_ || finish_called_) {
        idle_.OnCancelled();
        break;
      }
      ++pending_ops_;
      if (idle_.ExpiredOrRearm(worker_.cq(), &idle_tag_)) {
        --pending_ops_;  // not re-armed
        state_.metrics.AddIdleStreamClosed(kMethod);
        Finish({grpc::StatusCode::DEADLINE_EXCEEDED,
                "no message for " + std::to_string(state_.config.stream_idle_timeout_ms) +
                    " ms (stream_idle_timeout_ms): stream closed; what it sent before was "
                    "counted (trailer rta-event-response-bin)"});
      }
      break;
    case kDurable:
      if (!ok) {
        // The log could not write before the server drained: nothing of this stream may be
        // acknowledged (no counts trailer), the client re-sends it all.
        tally_ = EventTally();
        FinishNow({grpc::StatusCode::UNAVAILABLE,
                   "the server stopped before its event log could write this stream's events; "
                   "re-send them (their event ids make that safe)"});
        break;
      }
      FinishNow(deferred_status_);
      break;
    case kFinish:
      break;
    case kDone:
      done_ = true;
      // A client that cancels (or whose connection breaks) ends the call however the server
      // meant to finish it: count what really happened.
      if (context_.IsCancelled()) final_code_ = grpc::StatusCode::CANCELLED;
      idle_.Cancel();
      booking_.Close(state_, final_code_);
      break;
  }
  if (done_ && pending_ops_ == 0) delete this;
}

template <typename Message>
grpc::Status IngestCall<Message>::Consume() {
  const uint64_t position = messages_++;
  std::string why;
  const bool journaled = state_.log != nullptr;
  // The bytes as received go into the log record (see storage/ingest_record.h).
  if (journaled) CopyMessageBytes(request_, &message_bytes_);
  if (!ParseRequestMessage(request_, &message_, &parse_scratch_, &why)) {
    state_.metrics.AddUnparseableMessage(kMethod);
    const analytics::EventResponse& counted = tally_.response();
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "message #" + std::to_string(position) + " is not a valid " +
                Message::descriptor()->name() + ": " + why + "; the " + std::to_string(position) +
                " message(s) before it were counted (accepted " +
                std::to_string(counted.accepted()) + ", duplicates " +
                std::to_string(counted.duplicates()) + ", rejected " +
                std::to_string(counted.rejected()) + "; trailer rta-event-response-bin)"};
  }
  request_.Clear();
  if constexpr (kMethod == Method::kReportEventBatches) {
    if (static_cast<uint32_t>(message_.events_size()) > state_.config.max_batch_events) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "events: batch #" + std::to_string(position) + " has " +
                  std::to_string(message_.events_size()) + " events, limit " +
                  std::to_string(state_.config.max_batch_events)};
    }
  }
  if constexpr (kMethod == Method::kReportEventBatches) {
    if (grpc::Status status = state_.TakeEvents(booking_.principal(), message_.events_size());
        !status.ok()) {
      return status;
    }
  } else {
    if (grpc::Status status = state_.TakeEvents(booking_.principal(), 1); !status.ok()) {
      return status;
    }
  }
  if (journaled && !JournalAccepts(state_, &why)) return {grpc::StatusCode::UNAVAILABLE, why};
  // With a log, the message's events and its record are one ingest section: a checkpoint sees
  // both or neither.
  std::optional<agg::Aggregator::IngestSection> section;
  if (journaled) section.emplace(state_.aggregator.EnterIngest());
  const uint64_t accepted_before = tally_.response().accepted();
  const uint64_t duplicates_before = tally_.response().duplicates();
  storage::IngestRecord record;
  if constexpr (kMethod == Method::kReportEventBatches) {
    for (int i = 0; i < message_.events_size(); ++i) {
      if (!tally_.Ingest(state_, message_.events(i)) && journaled) record.skipped.push_back(i);
    }
    record.kind = storage::RecordKind::kEventBatch;
  } else {
    tally_.Ingest(state_, message_);
    record.kind = storage::RecordKind::kEvent;
  }
  if (journaled) {
    const uint64_t accepted = tally_.response().accepted() - accepted_before;
    if (accepted > 0) {
      record.ingest_ms = state_.clock.NowMs();
      record.accepted = static_cast<uint32_t>(accepted);
      record.message = message_bytes_;
      durable_needed_ = AppendToJournal(state_, record);
    }
    if (tally_.response().duplicates() > duplicates_before) {
      // Their originals may still be on their way to the disk.
      durable_needed_ = std::max(durable_needed_, JournalTail(state_));
    }
  }
  section.reset();
  tally_.FlushMetrics(state_.metrics);
  if (state_.push_subscribers.load(std::memory_order_relaxed) > 0) state_.request_early_tick();
  if (state_.ingest_fault_for_test) return state_.ingest_fault_for_test(stream_number_, messages_);
  return grpc::Status::OK;
}

template <typename Message>
void IngestCall<Message>::Finish(const grpc::Status& status) {
  finish_called_ = true;
  idle_.Cancel();
  // The response (or the counts trailer) acknowledges what it counts: only once it is durable.
  ++pending_ops_;
  if (!worker_.AwaitDurable(this, kDurable, durable_needed_)) {
    deferred_status_ = status;
    return;  // OnEvent(kDurable) finishes
  }
  --pending_ops_;
  FinishNow(status);
}

template <typename Message>
void IngestCall<Message>::FinishNow(const grpc::Status& status) {
  final_code_ = status.error_code();
  ++pending_ops_;
  if (status.ok()) {
    grpc::ByteBuffer response;
    bool own_buffer = false;
    grpc::SerializationTraits<analytics::EventResponse>::Serialize(tally_.response(), &response,
                                                                   &own_buffer);
    reader_.Finish(response, status, &finish_tag_);
  } else {
    // A non-OK status carries no response message; the trailer tells the client what of its
    // stream was counted, so that it can reconcile before it retries.
    context_.AddTrailingMetadata("rta-event-response-bin", tally_.response().SerializeAsString());
    reader_.FinishWithError(status, &finish_tag_);
  }
}

template class IngestCall<analytics::EventData>;
template class IngestCall<analytics::EventBatch>;

}  // namespace rta::server
