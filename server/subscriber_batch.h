#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "analytics.pb.h"
#include "server/metric_filter.h"
#include "server/snapshot_hub.h"

namespace rta::server {

// Decides what one subscriber is sent, one message at a time: the initial batch (the snapshot
// or the answer to a resume, the history asked for, the SNAPSHOT_END marker), then batches of
// the series that changed since the last batch it completed, paced by its interval and by the
// tick rules (early ticks only for push_on_change subscribers; a regular tick for everyone),
// with the ticks it missed while busy reported in `skipped`. For SubscribeMetricBatches each
// message is a MetricUpdateBatch of as many updates as fit in kMaxBatchMessageBytes
// (kMaxHistoryMessageBytes in an initial batch with history).
//
// Memory: a batch points at the published snapshot's shared messages (and holds that snapshot)
// instead of copying them, and walks the shared history chunks (HistoryView) instead of
// building the history for itself; only the resume answer, the skipped count and the end marker
// are serialized for this subscriber. So a subscriber holds at most one batch's pointers plus
// the message being written, however much history it asked for.
//
// No gRPC call in here (grpc::Slice and grpc::ByteBuffer are only the data types the messages
// are in), so it is tested on its own. Not thread-safe: one subscriber's call thread only. The
// caller keeps at most one message in flight and asks for the next when it has been written.
class SubscriberBatch {
 public:
  static constexpr size_t kMaxBatchMessageBytes = 256 * 1024;
  // The messages of an initial batch with history are cut smaller: a joiner holds the message
  // in flight (gRPC keeps it until the client's flow-control window takes it), and with 256 KiB
  // per joiner, 200 joiners at once peaked at 12.6x a plain subscriber's memory each (measured,
  // bench/README.md); 64 KiB keeps that within ~5x for 4x the messages of a history join.
  static constexpr size_t kMaxHistoryMessageBytes = 64 * 1024;

  struct Settings {
    MetricFilter filter;
    int64_t interval_ms = 0;      // at least this long between two batches (real time)
    bool push_on_change = false;  // takes early snapshots, not only regular ticks
    bool batched = false;         // MetricUpdateBatch messages (SubscribeMetricBatches)
  };

  // Sets up the subscriber and starts its initial batch from `latest` (the resume answer when
  // the request resumes, or the full snapshot), the history asked for, and the end marker.
  // `now_ms`: a steady clock, for interval pacing.
  void StartInitial(Settings settings, const analytics::SubscriptionRequest& request,
                    std::shared_ptr<const PublishedSnapshot> latest, const MetricHistory& history,
                    int64_t now_ms);

  // A snapshot was published (`regular`: a regular tick was published since the last call).
  // When the subscriber is busy (a message in flight or a batch not yet finished) the caller
  // calls NoteMissed() instead of StartDelta().
  void NoteTick(bool regular) {
    if (regular) regular_tick_due_ = true;
  }
  // Counts a tick this busy subscriber will not see on its own; true if it counts as conflated.
  bool NoteMissed(bool regular);
  // Starts the next batch from `latest` when one is due: false when there is nothing to send
  // now (nothing changed for this filter, an early tick for a subscriber without push, or the
  // interval not yet over). Only when HasMessage() is false.
  bool StartDelta(const std::shared_ptr<const PublishedSnapshot>& latest, int64_t now_ms);

  // A message of the current batch is still to be written.
  bool HasMessage() const { return !AtEnd(cursor_); }
  // The next message of the current batch and how many updates it carries. The reference is
  // valid until the next call to NextMessage(), Complete() or Release(); a writer takes its own
  // reference to the bytes at once.
  const grpc::ByteBuffer& NextMessage(size_t* updates);
  // Every message of the current batch has been written: the client is now at its sequence.
  void Complete();
  // Lets go of the current batch (and of what it points at) without completing it.
  void Release();

  uint64_t sent_sequence() const { return sent_sequence_; }
  uint64_t epoch() const { return epoch_; }

 private:
  // A position in the current batch: head_ (snapshot or delta messages), then the history
  // (series-major, each series oldest second first), then tail_ (the end marker).
  struct Cursor {
    size_t head = 0;
    size_t series = 0;  // in history_.series
    size_t chunk = 0;   // in history_.chunks
    size_t tail = 0;
  };
  // The update at a position: a whole shared or own message, or a range of a history chunk.
  struct Piece {
    const SerializedUpdate* message = nullptr;
    const HistoryChunk* chunk = nullptr;
    uint32_t begin = 0;
    uint32_t end = 0;
    size_t size() const { return message != nullptr ? message->bytes.size() : end - begin; }
    const uint8_t* data() const {
      return message != nullptr ? message->bytes.begin() : chunk->bytes.begin() + begin;
    }
  };
  bool AtEnd(const Cursor& c) const {
    return c.head >= head_.size() && c.series >= history_.series.size() && c.tail >= tail_.size();
  }
  Piece At(const Cursor& c) const;  // not at the end
  void Advance(Cursor& c) const;    // to the next update, skipping empty history entries
  void SkipEmptyHistory(Cursor& c) const;
  const SerializedUpdate* AddOwnMessage(const analytics::MetricUpdate& update);
  void WriteBatchMessage(size_t* updates);

  Settings settings_;
  bool regular_tick_due_ = false;  // a regular tick not yet taken into a batch
  int64_t last_batch_ms_ = 0;
  uint64_t epoch_ = 0;
  uint64_t sent_sequence_ = 0;   // every change up to this sequence has been written
  uint64_t batch_sequence_ = 0;  // the sequence the current batch brings the client to
  uint64_t missed_ticks_ = 0;    // snapshots published while this subscriber was busy
  std::shared_ptr<const PublishedSnapshot> batch_source_;  // owns what head_ points at
  std::vector<SerializedUpdate> own_messages_;  // reserved up front: head_/tail_ point into it
  std::vector<const SerializedUpdate*> head_;
  HistoryView history_;  // only in an initial batch
  std::vector<const SerializedUpdate*> tail_;
  Cursor cursor_;
  grpc::ByteBuffer message_;  // the message being written, when it is not a shared one
};

}  // namespace rta::server
