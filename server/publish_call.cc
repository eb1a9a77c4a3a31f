#include "server/publish_call.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "server/ingest_journal.h"
#include "server/message_parse.h"

namespace rta::server {

PublishCall::PublishCall(ServiceState& state, Worker& worker) : state_(state), worker_(worker) {
  Request();
}

void PublishCall::Request() {
  context_.AsyncNotifyWhenDone(&done_tag_);
  ++pending_ops_;
  state_.service.RequestPublishEvents(&context_, &stream_, worker_.cq(), worker_.cq(),
                                      &request_tag_);
}

void PublishCall::StartRead() {
  ++pending_ops_;
  reading_ = true;
  stream_.Read(&request_, &read_tag_);
}

void PublishCall::OnEvent(int op, bool ok) {
  --pending_ops_;
  switch (op) {
    case kRequest:
      if (!ok) {  // shutting down before the call started: no done tag will come
        delete this;
        return;
      }
      ++pending_ops_;  // done tag
      if (!state_.shutting_down.load(std::memory_order_relaxed)) {
        new PublishCall(state_, worker_);
      }
      if (grpc::Status status = booking_.Open(state_, kMethod, context_); !status.ok()) {
        Finish(status);
        break;
      }
      if (state_.shutting_down.load(std::memory_order_relaxed)) {
        Finish({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
        break;
      }
      ++pending_ops_;
      idle_.Arm(worker_.cq(), &idle_tag_, state_.config.stream_idle_timeout_ms);
      StartRead();
      break;
    case kRead:
      reading_ = false;
      if (finish_called_ || broken_) break;
      if (!ok) {  // half-close (or a broken call: then the done tag says CANCELLED)
        half_closed_ = true;
        Pump();
        break;
      }
      idle_.Touch();
      if (grpc::Status status = Consume(); !status.ok()) {
        Finish(status);
        break;
      }
      if (acks_.size() < state_.config.publish_window_batches) {
        StartRead();
      } else {
        read_paused_ = true;
      }
      Pump();
      break;
    case kDurable:
      awaiting_durable_ = false;
      if (finish_called_ || broken_) break;
      if (!ok) {
        Finish({grpc::StatusCode::UNAVAILABLE,
                "the server stopped before its event log could write the batches not yet "
                "acknowledged; re-send them (their sequences make that exact)"});
        break;
      }
      Pump();
      break;
    case kWrite:
      writing_ = false;
      if (!ok) {  // the client is gone; the done tag ends the call
        broken_ = true;
        break;
      }
      acks_.pop_front();
      if (finish_after_write_) {
        const grpc::Status status = *finish_after_write_;
        finish_after_write_.reset();
        Finish(status);
        break;
      }
      if (read_paused_ && !half_closed_ && !finish_called_ &&
          acks_.size() < state_.config.publish_window_batches) {
        read_paused_ = false;
        StartRead();
      }
      Pump();
      break;
    case kIdle:
      if (!ok || done_ || finish_called_) {
        idle_.OnCancelled();
        break;
      }
      ++pending_ops_;
      if (idle_.ExpiredOrRearm(worker_.cq(), &idle_tag_)) {
        --pending_ops_;  // not re-armed
        // A client waiting for acknowledgements is not idle: only one that sends nothing and
        // has nothing outstanding is.
        if (!acks_.empty() || read_paused_) {
          ++pending_ops_;
          idle_.Arm(worker_.cq(), &idle_tag_, state_.config.stream_idle_timeout_ms);
          break;
        }
        state_.metrics.AddIdleStreamClosed(kMethod);
        Finish({grpc::StatusCode::DEADLINE_EXCEEDED,
                "no message for " + std::to_string(state_.config.stream_idle_timeout_ms) +
                    " ms (stream_idle_timeout_ms): stream closed; every batch before was "
                    "acknowledged"});
      }
      break;
    case kFinish:
      break;
    case kDone:
      done_ = true;
      if (context_.IsCancelled()) final_code_ = grpc::StatusCode::CANCELLED;
      idle_.Cancel();
      booking_.Close(state_, final_code_);
      break;
  }
  if (done_ && pending_ops_ == 0) delete this;
}

grpc::Status PublishCall::Consume() {
  const uint64_t position = messages_++;
  std::string why;
  // The bytes as received go into the log record (see storage/ingest_record.h).
  CopyMessageBytes(request_, &message_bytes_);
  if (!ParseRequestMessage(request_, &message_, &parse_scratch_, &why)) {
    state_.metrics.AddUnparseableMessage(kMethod);
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "message #" + std::to_string(position) + " is not a valid PublishRequest: " + why +
                "; batches acknowledged before it stay counted, re-send the others"};
  }
  request_.Clear();
  PendingAck pending;
  if (grpc::Status status = TakeBatch(message_, &pending); !status.ok()) return status;
  acks_.push_back(std::move(pending));
  return grpc::Status::OK;
}

grpc::Status PublishCall::TakeBatch(const analytics::PublishRequest& request, PendingAck* pending) {
  const std::string& producer = request.producer_id();
  if (producer.empty() || producer.size() > ProducerTable::kMaxProducerIdBytes) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "producer_id: " + std::to_string(producer.size()) + " bytes; must be 1-" +
                std::to_string(ProducerTable::kMaxProducerIdBytes)};
  }
  if (request.sequence() == 0) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "sequence: 0; a producer's batches are numbered from 1"};
  }
  if (static_cast<uint32_t>(request.events_size()) > state_.config.max_batch_events) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "events: batch sequence " + std::to_string(request.sequence()) + " has " +
                std::to_string(request.events_size()) + " events, limit " +
                std::to_string(state_.config.max_batch_events)};
  }
  if (grpc::Status status = state_.TakeEvents(booking_.principal(), request.events_size());
      !status.ok()) {
    return status;
  }
  std::string why;
  if (!JournalAccepts(state_, &why)) return {grpc::StatusCode::UNAVAILABLE, why};

  analytics::PublishAck& ack = pending->ack;
  ack.set_sequence(request.sequence());
  const int64_t now_ms = state_.clock.NowMs();
  // Everything from the producer check to the append is one ingest section: a checkpoint sees
  // the batch entirely (events, producer sequence, log record) or not at all.
  auto section = state_.aggregator.EnterIngest();
  ProducerTable::Batch batch;
  BatchCounts original;
  uint64_t expected = 0;
  // Cluster mode: a producer's batches reach several nodes (round robin, failover), so no node's
  // table sees its whole sequence; a re-sent batch is stored again and its events are found
  // by their event_id at the partition's owner (which counts them once).
  const ProducerTable::Verdict verdict =
      state_.cluster ? ProducerTable::Verdict::kNew
                     : state_.producers.Begin(producer, request.sequence(), now_ms, &batch,
                                              &original, &expected);
  switch (verdict) {
    case ProducerTable::Verdict::kFull:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "the server tracks its maximum of " + std::to_string(state_.config.max_producers) +
                  " producers (--max-producers); retry later"};
    case ProducerTable::Verdict::kGap:
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "sequence: producer " + producer + " sent batch " +
                  std::to_string(request.sequence()) + " but the next one expected is " +
                  std::to_string(expected) + " (batches were skipped)"};
    case ProducerTable::Verdict::kDuplicate:
      ack.set_duplicate_batch(true);
      if (original.accepted + original.duplicates + original.rejected ==
          static_cast<uint64_t>(request.events_size())) {
        ack.set_accepted(original.accepted);
        ack.set_duplicates(original.duplicates);
        ack.set_rejected(original.rejected);
      } else {
        ack.set_duplicates(request.events_size());
      }
      state_.metrics.AddIngested(0, request.events_size());
      state_.metrics.AddDuplicateBatch();
      // The original may still be on its way to the disk.
      pending->lsn = JournalTail(state_);
      return grpc::Status::OK;
    case ProducerTable::Verdict::kNew:
      break;
  }
  EventTally tally;
  storage::IngestRecord record;
  for (int i = 0; i < request.events_size(); ++i) {
    if (!tally.Ingest(state_, request.events(i))) record.skipped.push_back(i);
  }
  const analytics::EventResponse& counted = tally.response();
  record.kind =
      counted.accepted() > 0 ? storage::RecordKind::kPublish : storage::RecordKind::kProducerOnly;
  record.ingest_ms = now_ms;
  record.producer_id = producer;
  record.sequence = request.sequence();
  record.accepted = static_cast<uint32_t>(counted.accepted());
  record.duplicates = static_cast<uint32_t>(counted.duplicates());
  record.rejected = static_cast<uint32_t>(counted.rejected());
  if (record.kind == storage::RecordKind::kPublish) {
    record.message = message_bytes_;
  } else {
    record.skipped.clear();
  }
  const uint64_t lsn = AppendToJournal(state_, record);
  if (!state_.cluster) {
    batch.Commit({record.sequence, record.accepted, record.duplicates, record.rejected}, now_ms);
  }
  tally.FlushMetrics(state_.metrics);
  // Duplicates among the events: their originals may still be on their way to the disk.
  pending->lsn = counted.duplicates() > 0 ? std::max(lsn, JournalTail(state_)) : lsn;
  ack.set_accepted(counted.accepted());
  ack.set_duplicates(counted.duplicates());
  ack.set_rejected(counted.rejected());
  *ack.mutable_errors() = counted.errors();
  if (state_.push_subscribers.load(std::memory_order_relaxed) > 0) state_.request_early_tick();
  return grpc::Status::OK;
}

void PublishCall::Pump() {
  if (writing_ || awaiting_durable_ || finish_called_ || broken_) return;
  if (acks_.empty()) {
    if (half_closed_) Finish(grpc::Status::OK);
    return;
  }
  PendingAck& head = acks_.front();
  if (head.lsn != 0) {
    ++pending_ops_;
    if (!worker_.AwaitDurable(this, kDurable, head.lsn)) {
      awaiting_durable_ = true;  // OnEvent(kDurable) comes back here
      return;
    }
    --pending_ops_;
    head.lsn = 0;
  }
  bool own_buffer = false;
  response_.Clear();  // the previous ack's buffer (its write has completed)
  grpc::SerializationTraits<analytics::PublishAck>::Serialize(head.ack, &response_, &own_buffer);
  writing_ = true;
  ++pending_ops_;
  stream_.Write(response_, &write_tag_);
}

void PublishCall::Finish(const grpc::Status& status) {
  if (finish_called_) return;
  if (writing_) {  // one write operation at a time: Finish after the ack in flight
    finish_after_write_ = status;
    return;
  }
  finish_called_ = true;
  final_code_ = status.error_code();
  idle_.Cancel();
  ++pending_ops_;
  stream_.Finish(status, &finish_tag_);
}

}  // namespace rta::server
