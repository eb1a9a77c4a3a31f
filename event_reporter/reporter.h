#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "analytics.grpc.pb.h"
#include "event_reporter/client_channel.h"
#include "event_reporter/event_queue.h"

namespace rta::reporter {

struct DeliveryOptions {
  client::ChannelOptions channel;
  bool batched = true;  // ReportEventBatches; false: ReportEvent, one event per message
  size_t batch_events = 500;
  size_t batch_bytes = 512 * 1024;
  std::chrono::milliseconds linger{20};  // how long a batch waits to fill up
  // A stream is closed, and its events acknowledged by the server's response, after this many
  // events or this long; until then its events are kept for a resend.
  size_t stream_events = 50'000;
  std::chrono::milliseconds stream_duration{5'000};
  std::chrono::milliseconds deadline{30'000};  // per stream
  int streams = 2;                             // concurrent streams
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{10'000};
  // Stop retrying the same events after this long without success; they count as failed.
  std::chrono::milliseconds give_up_after{300'000};
  size_t queue_events = 50'000;
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
  uint64_t acknowledged() const { return accepted + duplicates + rejected; }
};

// Streams events to the server(s) with no loss and no double counting.
//
// Events are queued by Submit() and sent by `streams` threads, each on its own stream, in
// batches bounded by count, bytes and linger time. The server acknowledges a stream's events
// in its response when the stream ends; until then they are kept. When a stream fails
// (UNAVAILABLE, DEADLINE_EXCEEDED, a restart, ...) they are resent on a new stream after an
// exponential backoff with full jitter; since every event has an id, the server counts the
// ones it had already seen as duplicates, never twice. A response is trusted only when it
// accounts for every event of its stream (accepted + duplicates + rejected = events sent);
// one that does not is an acknowledgement mismatch, handled like a failed stream (the events
// are re-sent, which the de-duplication makes safe), and after kMaxConsecutiveMismatches in a
// row on the same events the delivery stops: a server that keeps miscounting is not one to
// trust with more. A refusal that retrying cannot fix (UNAUTHENTICATED, PERMISSION_DENIED,
// INVALID_ARGUMENT, ...) stops the delivery, with the server's message; when the server names
// the message it refused ("message #N", 0-based) and reports what it counted before it in the
// trailer `rta-event-response-bin`, the events before that message are counted and only the
// rest fail.
// Thread-safe: Submit from any thread; Finish once.
class Reporter {
 public:
  static constexpr int kMaxConsecutiveMismatches = 5;

  Reporter(std::shared_ptr<grpc::Channel> channel, DeliveryOptions options);
  ~Reporter();  // aborts what is still queued and waits for the threads
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  // Queues an event (blocks while the queue is full). Gives it an id when it has none.
  // False when the delivery was stopped by an error that retrying cannot fix.
  bool Submit(analytics::EventData event, uint64_t line = 0);
  // No more events: waits until every event is acknowledged or given up on.
  DeliveryStats Finish();

  DeliveryStats stats() const;
  // Set when the delivery was stopped: the status code name and message.
  std::string fatal_error() const;

 private:
  class Lane;
  void Stop(const std::string& reason);
  void Log(const std::string& message);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<analytics::AnalyticsService::Stub> stub_;
  DeliveryOptions options_;
  EventQueue queue_;
  std::string id_prefix_;  // random per run, for events without an id
  std::atomic<uint64_t> next_id_{0};
  std::atomic<uint64_t> sent_{0}, accepted_{0}, duplicates_{0}, rejected_{0}, failed_{0},
      retries_{0}, ack_mismatches_{0};
  mutable std::mutex mutex_;  // guards fatal_error_ and serializes options_.log
  std::string fatal_error_;
  std::atomic<bool> stopped_{false};
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<std::thread> threads_;
  bool finished_ = false;
};

}  // namespace rta::reporter
