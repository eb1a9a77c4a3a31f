#include "event_reporter/event_queue.h"

#include <algorithm>
#include <cstdint>

namespace rta::reporter {

bool EventQueue::Push(QueuedEvent event) {
  std::unique_lock lock(mutex_);
  if (events_.size() >= capacity_ && !closed_) {
    ++producers_waiting_;
    not_full_.wait(lock, [&] { return events_.size() < capacity_ || closed_; });
    --producers_waiting_;
  }
  if (closed_) return false;
  events_.push_back(std::move(event));
  // Wake consumers only when one can act: a futex wake per event would cost more than the
  // event itself.
  if ((events_.size() == 1 && first_waiters_ > 0) || events_.size() >= linger_wake_size_) {
    not_empty_.notify_all();
  }
  return true;
}

void EventQueue::Close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  not_empty_.notify_all();
  not_full_.notify_all();
}

bool EventQueue::Drained() {
  std::lock_guard lock(mutex_);
  return closed_ && events_.empty();
}

size_t EventQueue::Abort(std::vector<uint64_t>* lines) {
  std::lock_guard lock(mutex_);
  const size_t dropped = events_.size();
  if (lines != nullptr) {
    for (const QueuedEvent& event : events_) lines->push_back(event.line);
  }
  events_.clear();
  closed_ = aborted_ = true;
  not_empty_.notify_all();
  not_full_.notify_all();
  return dropped;
}

bool EventQueue::WaitNonEmpty() {
  std::unique_lock lock(mutex_);
  ++first_waiters_;
  not_empty_.wait(lock, [&] { return !events_.empty() || closed_; });
  --first_waiters_;
  return !events_.empty();
}

size_t EventQueue::PopBatch(size_t max_events, size_t max_bytes,
                            std::chrono::steady_clock::time_point first_by,
                            std::chrono::milliseconds linger, analytics::EventBatch* batch,
                            std::vector<uint64_t>* lines) {
  std::unique_lock lock(mutex_);
  ++first_waiters_;
  const bool any =
      not_empty_.wait_until(lock, first_by, [&] { return !events_.empty() || closed_; });
  --first_waiters_;
  if (!any) return 0;
  const auto linger_until = std::chrono::steady_clock::now() + linger;
  size_t taken = 0;
  size_t bytes = 0;
  while (taken < max_events) {
    if (events_.empty()) {
      if (closed_) break;
      // Lingering: wake when the rest of the batch is there (or at the linger deadline).
      linger_wake_size_ = std::min(linger_wake_size_, max_events - taken);
      const bool more =
          not_empty_.wait_until(lock, linger_until, [&] { return !events_.empty() || closed_; });
      linger_wake_size_ = SIZE_MAX;
      if (!more) break;
      continue;
    }
    QueuedEvent& next = events_.front();
    // A batch always takes its first event, even one larger than max_bytes on its own (the
    // server then refuses that event by name instead of the client stalling on it).
    if (taken > 0 && bytes + next.bytes > max_bytes) break;
    bytes += next.bytes;
    lines->push_back(next.line);
    batch->add_events()->Swap(&next.event);
    events_.pop_front();
    ++taken;
  }
  if (taken > 0 && producers_waiting_ > 0) not_full_.notify_all();
  return taken;
}

}  // namespace rta::reporter
