#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "analytics.grpc.pb.h"
#include "clients/common/client_channel.h"
#include "event_reporter/event_queue.h"

namespace rta::reporter {

// Which RPC carries the events.
enum class Protocol {
  kPublish,  // PublishEvents: every batch acknowledged on its own, a window of them in flight
  kBatches,  // ReportEventBatches: a stream's events acknowledged when the stream ends
  kEvents,   // ReportEvent: the same, one event per message
};

struct DeliveryOptions {
  client::ChannelOptions channel;
  Protocol protocol = Protocol::kPublish;
  size_t batch_events = 500;
  size_t batch_bytes = 512 * 1024;
  std::chrono::milliseconds linger{20};  // how long a batch waits to fill up
  // A stream is closed, and its events acknowledged by the server's response, after this many
  // events or this long; until then its events are kept for a resend.
  size_t stream_events = 50'000;
  std::chrono::milliseconds stream_duration{5'000};
  // kBatches / kEvents: the deadline of one stream. kPublish: the longest wait for the next
  // acknowledgement while batches are unacknowledged (then the stream is treated as broken).
  std::chrono::milliseconds deadline{30'000};
  // kPublish: batches (and their bytes) sent and not yet acknowledged, per stream. The server
  // remembers the counts of a producer's last 8 batches, so a window of at most 8 keeps the
  // counts of a re-sent batch exact (more re-sends are counted as duplicates).
  size_t window_batches = 8;
  size_t window_bytes = 8 * 1024 * 1024;
  int streams = 2;  // concurrent streams
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{10'000};
  // Stop retrying the same events after this long without success; they count as failed.
  std::chrono::milliseconds give_up_after{300'000};
  size_t queue_events = 50'000;
  // Set by SIGINT/SIGTERM (may be null): stop taking events, deliver what was already taken
  // for at most `drain`, then give up on the rest (counted as unacknowledged).
  const std::atomic<bool>* interrupted = nullptr;
  std::chrono::milliseconds drain{5'000};
  // Messages in words for a person: retries, rejected events, giving up. Called from the
  // sending threads, one call at a time.
  std::function<void(const std::string&)> log;
};

// Counters of a delivery in progress; each one only grows.
struct DeliveryStats {
  uint64_t sent = 0;        // events written to a stream at least once
  uint64_t accepted = 0;    // counted by the server
  uint64_t duplicates = 0;  // already counted (ids seen before; after a retry, the resent ones)
  uint64_t rejected = 0;    // refused by the server (invalid, too old, ...)
  uint64_t failed = 0;      // given up on: not delivered
  uint64_t retries = 0;     // streams re-sent after a failure
  // Responses whose counts did not add up to the events sent on their stream (each one is
  // also a retry: the stream's events are re-sent).
  uint64_t ack_mismatches = 0;
  // After an interruption: events taken (Submit) but not acknowledged when the drain ended,
  // sent or not. They may or may not have been counted; sent again with the same ids, they
  // are counted once.
  uint64_t unacknowledged = 0;
  bool interrupted = false;
  // The smallest input line of an event taken but not acknowledged (failed, unacknowledged);
  // 0 when there is none.
  uint64_t first_unacknowledged_line = 0;
  uint64_t acknowledged() const { return accepted + duplicates + rejected; }
};

// Streams events to the server(s) with no loss and no double counting.
//
// Submit() routes the events of one session to one lane (by a hash of session_id; events
// without a session round-robin), so a session's events reach the server in the order given:
// the server's history attributes a session's later events to its first one.
//
// Protocol::kPublish (the default): each of the `streams` lanes is one producer (a random
// per-run id and the lane's number) on a PublishEvents stream. A lane numbers its batches
// 1, 2, 3, ..., keeps at most window_batches / window_bytes of them unacknowledged (it takes no
// more events while the window is full: backpressure up to the input), and frees a batch when
// its PublishAck arrives (in order; an ack for another sequence or whose counts do not add up
// to the batch's events is an acknowledgement mismatch, as below). After a broken stream it
// reconnects with the backoff below and re-sends only the unacknowledged batches with their
// original sequences; the server recognises the ones it already holds (duplicate_batch, with
// their original counts). No stream carries more than a window, so every stream that lives for
// a window's worth of bytes makes progress. A sequence gap (FAILED_PRECONDITION) stops the
// delivery, except with several servers: a stream that reconnected to a server with an older
// state of the producer goes on as a new producer id (lane id + "." + generation), the window
// numbered from 1 again (the events keep their ids: the server de-duplicates them).
//
// Protocol::kBatches / kEvents: events are queued by Submit() and sent by `streams` threads, each
// on its own stream, in batches bounded by count, bytes and linger time. The server acknowledges a
// stream's events in its response when the stream ends; until then they are kept. When a stream
// fails (UNAVAILABLE, DEADLINE_EXCEEDED, a restart, ...) they are resent on a new stream after an
// exponential backoff with full jitter; since every event has an id, the server counts the
// ones it had already seen as duplicates, never twice. A response is trusted only when it
// accounts for every event of its stream (accepted + duplicates + rejected = events sent);
// one that does not is an acknowledgement mismatch, handled like a failed stream (the events
// are re-sent, which the de-duplication makes safe), and after kMaxConsecutiveMismatches in a
// row on the same events the delivery stops: a server that keeps miscounting is not one to
// trust with more. A refusal that retrying cannot fix (UNAUTHENTICATED, PERMISSION_DENIED,
// INVALID_ARGUMENT, ...) stops the delivery, with the server's message; when the server reports
// what it counted before the refusal in the trailer `rta-event-response-bin` and that is the
// events of the stream's first messages, those are counted and only the rest fail (a message
// the server names, "message #N" 0-based, must be the first one not counted).
// Interruption (options.interrupted): Submit fails from then on; what was taken is still
// delivered for at most options.drain; then streams are cancelled and what is left counts as
// unacknowledged (stats().first_unacknowledged_line says where the input is to be resumed).
// Thread-safe: Submit from any thread; Finish once.
class Reporter {
 public:
  static constexpr int kMaxConsecutiveMismatches = 5;

  Reporter(std::shared_ptr<grpc::Channel> channel, DeliveryOptions options);
  ~Reporter();  // aborts what is still queued and waits for the threads
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  // Queues an event (blocks while the queue is full). Gives it an id when it has none.
  // False when the delivery was stopped by an error that retrying cannot fix (the event counts
  // as failed), or interrupted (the event is not taken: the input stops before it).
  bool Submit(analytics::EventData event, uint64_t line = 0);
  // No more events: waits until every event is acknowledged or given up on.
  DeliveryStats Finish();

  DeliveryStats stats() const;
  // Set when the delivery was stopped: the status code name and message.
  std::string fatal_error() const;
  // The producer id of a kPublish lane (0-based), e.g. "r0123456789abcdef-2".
  std::string ProducerId(int lane) const;

 private:
  class LaneBase;
  class Lane;
  class PublishLane;
  void Stop(const std::string& reason);
  void Log(const std::string& message);
  // The most bytes a new batch takes: options_.batch_bytes, or less after LowerBatchBytes.
  size_t batch_bytes() const { return batch_bytes_.load(std::memory_order_relaxed); }
  // After the server refused a message over `server_limit` bytes: keeps new batches well under
  // it and says so once (*lowered: this call lowered it). Returns the limit now in force.
  size_t LowerBatchBytes(size_t server_limit, bool* lowered);
  // Watches options_.interrupted: starts the drain, and ends it at its deadline.
  void WatchInterrupt();
  void BeginDrain();
  void StopWatcher();
  bool draining() const { return draining_.load(); }
  bool drain_expired() const { return drain_expired_.load(); }
  // Events given up on: `failed` after a stop, else (an interruption) unacknowledged.
  void GiveUp(uint64_t events, const std::vector<uint64_t>& lines);
  void NoteUnacknowledgedLine(uint64_t line);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<analytics::AnalyticsService::Stub> stub_;
  DeliveryOptions options_;
  // One per lane (stream): Submit() routes a session's events to one of them.
  std::vector<std::unique_ptr<EventQueue>> queues_;
  std::atomic<uint64_t> next_lane_{0};  // for events without a session
  std::string id_prefix_;               // random per run, for events without an id
  std::atomic<uint64_t> next_id_{0};
  std::atomic<uint64_t> sent_{0}, accepted_{0}, duplicates_{0}, rejected_{0}, failed_{0},
      retries_{0}, ack_mismatches_{0}, unacknowledged_{0}, first_unacknowledged_line_{0};
  mutable std::mutex mutex_;  // guards fatal_error_ and serializes options_.log
  std::string fatal_error_;
  std::atomic<size_t> batch_bytes_{0};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> draining_{false};       // interrupted: Submit fails, the queue is closed
  std::atomic<bool> drain_expired_{false};  // the drain's time is up: give up on the rest
  std::vector<std::unique_ptr<LaneBase>> lanes_;
  std::vector<std::thread> threads_;
  std::mutex watch_mutex_;
  std::condition_variable watch_wake_;
  bool watch_done_ = false;  // guarded by watch_mutex_
  std::thread watcher_;
  bool finished_ = false;
};

}  // namespace rta::reporter
