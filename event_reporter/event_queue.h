#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "analytics.pb.h"

namespace rta::reporter {

// An event and where it came from, so errors can name the input line.
struct QueuedEvent {
  analytics::EventData event;
  uint64_t line = 0;  // 1-based line of the input file; 0 when not from a file
  size_t bytes = 0;   // serialized size, for batch limits
};

// A bounded multi-producer, multi-consumer queue between the input and the sending streams.
// Push blocks while it is full (backpressure: a slow or absent server pauses the reading of the
// input instead of growing memory). Thread-safe. Close() lets consumers drain what is left;
// Abort() drops it and wakes everyone. Push fails once either was called.
class EventQueue {
 public:
  explicit EventQueue(size_t capacity) : capacity_(capacity) {}

  // False when the queue was closed or aborted (the event is not taken).
  bool Push(QueuedEvent event);
  void Close();
  // Drops what is queued and returns how many events that was (their input lines are appended
  // to *lines when given); Push fails from now on.
  size_t Abort(std::vector<uint64_t>* lines = nullptr);
  // Closed and empty: no event will come any more.
  bool Drained();

  // Waits until an event is available (true) or the queue is closed and empty (false).
  bool WaitNonEmpty();
  // Takes events for one batch: up to max_events / max_bytes (at least one event if any), waiting
  // for the first until first_by and for more until linger after the first has arrived.
  // Appends the events to *batch and their lines to *lines; returns how many were taken
  // (0: none arrived in time, or the queue is closed and empty).
  size_t PopBatch(size_t max_events, size_t max_bytes,
                  std::chrono::steady_clock::time_point first_by, std::chrono::milliseconds linger,
                  analytics::EventBatch* batch, std::vector<uint64_t>* lines);

 private:
  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<QueuedEvent> events_;
  bool closed_ = false;
  bool aborted_ = false;
  int first_waiters_ = 0;      // consumers waiting for any event
  int producers_waiting_ = 0;  // producers waiting for room
  // A lingering consumer wants waking once this many events are queued (SIZE_MAX: none).
  size_t linger_wake_size_ = SIZE_MAX;
};

}  // namespace rta::reporter
