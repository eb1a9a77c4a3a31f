#include "server/subscriber_batch.h"

#include <grpc/slice.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace rta::server {
namespace {

size_t VarintSize(size_t value) {
  size_t size = 1;
  for (; value >= 0x80; value >>= 7) ++size;
  return size;
}

}  // namespace

void SubscriberBatch::StartInitial(Settings settings, const analytics::SubscriptionRequest& request,
                                   std::shared_ptr<const PublishedSnapshot> latest,
                                   const MetricHistory& history, int64_t now_ms) {
  settings_ = std::move(settings);
  const agg::Snapshot& snapshot = *latest->snapshot;
  epoch_ = snapshot.epoch;
  const bool resumable = request.resume_epoch() != 0 && request.resume_epoch() == snapshot.epoch &&
                         request.resume_after_sequence() <= snapshot.sequence;
  const bool wants_resume = request.resume_epoch() != 0;
  const uint64_t since = resumable ? request.resume_after_sequence() : 0;
  own_messages_.reserve(2);  // the resume answer, the end marker
  analytics::MetricUpdate update;
  for (size_t i = 0; i < snapshot.points.size(); ++i) {
    const agg::MetricPoint& point = snapshot.points[i];
    if (!settings_.filter.Matches(latest->metric_ids[i], point.window)) continue;
    if (resumable && point.changed_sequence <= since) continue;
    if (wants_resume && head_.empty()) {
      // The first message says whether the resume worked; it is this subscriber's own copy.
      FillMetricUpdate(snapshot, point,
                       resumable ? analytics::UPDATE_KIND_DELTA : analytics::UPDATE_KIND_SNAPSHOT,
                       &update);
      update.set_recovered(resumable);
      head_.push_back(AddOwnMessage(update));
      update.Clear();
      continue;
    }
    head_.push_back(resumable ? &latest->delta_messages[i] : &latest->snapshot_messages[i]);
  }
  if (request.history_seconds() > 0) {
    history_ = history.View(settings_.filter, request.history_seconds());
  }
  update.set_kind(analytics::UPDATE_KIND_SNAPSHOT_END);
  update.set_sequence(snapshot.sequence);
  update.set_epoch(snapshot.epoch);
  update.set_timestamp(snapshot.time_ms / 1000);
  update.set_timestamp_ms(snapshot.time_ms);
  update.set_recovered(resumable);
  tail_.push_back(AddOwnMessage(update));
  batch_sequence_ = snapshot.sequence;
  batch_source_ = std::move(latest);
  last_batch_ms_ = now_ms;
  cursor_ = {};
  SkipEmptyHistory(cursor_);
}

bool SubscriberBatch::NoteMissed(bool regular) {
  // An early tick that this subscriber would not have taken anyway is not a miss.
  if (!regular && !settings_.push_on_change) return false;
  ++missed_ticks_;
  return true;
}

bool SubscriberBatch::StartDelta(const std::shared_ptr<const PublishedSnapshot>& latest,
                                 int64_t now_ms) {
  const agg::Snapshot& snapshot = *latest->snapshot;
  if (snapshot.sequence <= sent_sequence_ && snapshot.epoch == epoch_) return false;
  // Early ticks exist for push subscribers; everyone else takes their changes at the next
  // regular tick (batches are cumulative, so nothing is lost).
  if (!regular_tick_due_ && !settings_.push_on_change) return false;
  if (now_ms - last_batch_ms_ < settings_.interval_ms) return false;
  last_batch_ms_ = now_ms;
  regular_tick_due_ = false;
  const uint64_t skipped = missed_ticks_;
  missed_ticks_ = 0;
  if (skipped > 0) own_messages_.reserve(1);  // the first update carries the skipped count
  auto add = [&](size_t i) {
    const agg::MetricPoint& point = snapshot.points[i];
    if (!settings_.filter.Matches(latest->metric_ids[i], point.window)) return;
    if (skipped > 0 && head_.empty()) {
      analytics::MetricUpdate update;
      FillMetricUpdate(snapshot, point, analytics::UPDATE_KIND_DELTA, &update);
      update.set_skipped(skipped);
      head_.push_back(AddOwnMessage(update));
      return;
    }
    head_.push_back(&latest->delta_messages[i]);
  };
  if (snapshot.sequence == sent_sequence_ + 1) {
    for (uint32_t i : latest->changed_now) add(i);
  } else {
    for (size_t i = 0; i < snapshot.points.size(); ++i) {
      if (snapshot.points[i].changed_sequence > sent_sequence_) add(i);
    }
  }
  batch_sequence_ = snapshot.sequence;
  cursor_ = {};
  if (head_.empty()) {
    sent_sequence_ = snapshot.sequence;
    return false;
  }
  batch_source_ = latest;
  return true;
}

const SerializedUpdate* SubscriberBatch::AddOwnMessage(const analytics::MetricUpdate& update) {
  // Never reallocates (the caller reserved), so the pointers already in head_ stay valid.
  own_messages_.push_back(SerializeUpdate(update));
  return &own_messages_.back();
}

SubscriberBatch::Piece SubscriberBatch::At(const Cursor& c) const {
  Piece piece;
  if (c.head < head_.size()) {
    piece.message = head_[c.head];
  } else if (c.series < history_.series.size()) {
    piece.chunk = history_.chunks[c.chunk].get();
    piece.chunk->Find(history_.series[c.series], &piece.begin, &piece.end);
  } else {
    piece.message = tail_[c.tail];
  }
  return piece;
}

void SubscriberBatch::Advance(Cursor& c) const {
  if (c.head < head_.size()) {
    ++c.head;
  } else if (c.series < history_.series.size()) {
    ++c.chunk;
  } else {
    ++c.tail;
  }
  SkipEmptyHistory(c);
}

void SubscriberBatch::SkipEmptyHistory(Cursor& c) const {
  if (c.head < head_.size()) return;
  uint32_t begin = 0, end = 0;
  for (; c.series < history_.series.size(); ++c.series, c.chunk = 0) {
    for (; c.chunk < history_.chunks.size(); ++c.chunk) {
      if (history_.chunks[c.chunk]->Find(history_.series[c.series], &begin, &end)) return;
    }
  }
}

const grpc::ByteBuffer& SubscriberBatch::NextMessage(size_t* updates) {
  message_.Clear();  // the previous message has been written
  if (settings_.batched) {
    WriteBatchMessage(updates);
    return message_;
  }
  const Piece piece = At(cursor_);
  Advance(cursor_);
  *updates = 1;
  if (piece.message != nullptr) return piece.message->buffer;
  // A history update: a view of the shared chunk's bytes (a reference, not a copy).
  grpc::Slice bytes = piece.chunk->bytes.sub(piece.begin, piece.end);
  message_ = grpc::ByteBuffer(&bytes, 1);
  return message_;
}

void SubscriberBatch::WriteBatchMessage(size_t* updates) {
  // One MetricUpdateBatch: each update is its field 1 on the wire (tag 0x0A, the length as a
  // varint, the serialized update), so the message is the updates' bytes with a few header
  // bytes between them, in one contiguous slice (cheaper for gRPC to frame than a slice per
  // update) allocated at its exact size.
  const size_t limit = history_.series.empty() ? kMaxBatchMessageBytes : kMaxHistoryMessageBytes;
  size_t count = 0;
  size_t message_size = 0;
  for (Cursor c = cursor_; !AtEnd(c); Advance(c), ++count) {
    const size_t length = At(c).size();
    const size_t field_size = 1 + VarintSize(length) + length;
    if (count > 0 && message_size + field_size > limit) break;
    message_size += field_size;
  }
  grpc_slice raw = grpc_slice_malloc(message_size);
  uint8_t* out = GRPC_SLICE_START_PTR(raw);
  for (size_t i = 0; i < count; ++i, Advance(cursor_)) {
    const Piece piece = At(cursor_);
    *out++ = 0x0A;
    for (size_t rest = piece.size();; rest >>= 7) {
      *out++ = static_cast<uint8_t>((rest & 0x7F) | (rest >= 0x80 ? 0x80 : 0));
      if (rest < 0x80) break;
    }
    std::memcpy(out, piece.data(), piece.size());
    out += piece.size();
  }
  *updates = count;
  grpc::Slice message(raw, grpc::Slice::STEAL_REF);
  message_ = grpc::ByteBuffer(&message, 1);
}

void SubscriberBatch::Complete() {
  sent_sequence_ = std::max(sent_sequence_, batch_sequence_);
  Release();
}

void SubscriberBatch::Release() {
  cursor_ = {};
  message_.Clear();
  batch_source_.reset();  // an old snapshot is freed as soon as its last subscriber is done
  history_ = {};          // and history chunks that the history itself dropped meanwhile
  // A resumed or full initial batch can hold hundreds of entries; a subscriber keeps only a
  // steady-state batch's worth of capacity between ticks.
  constexpr size_t kKeptCapacity = 64;
  if (head_.capacity() > kKeptCapacity) {
    std::vector<const SerializedUpdate*>().swap(head_);
  } else {
    head_.clear();
  }
  tail_.clear();
  if (own_messages_.capacity() > 1) {
    std::vector<SerializedUpdate>().swap(own_messages_);
  } else {
    own_messages_.clear();
  }
}

}  // namespace rta::server
