#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>

#include "server/cluster/nats_session.h"

namespace rta::cluster {

// The partial stream read once per node (docs/design/cluster.md "History"). The live view's
// reader (PartialMerger) and the history (ClusterHistory) need the same messages in the same
// order; the merger hands each message it read here, with the sequence it asked from, and the
// history takes one when it is exactly what its own read at its position would return: "the
// first message at `position` or later" is a message read from at or before `position` whose
// sequence is at or after it. Otherwise (the history is behind the merger after a restart, the
// merger stopped, or messages were dropped here) the history reads for itself, as before.
//
// Bounded: beyond max_bytes of queued payload, new messages are dropped (counted), and the
// history reads those itself. Threading: Push from one thread (the merger's), Take and Stop from
// another (the history's); dropped() from any.
class PartialTap {
 public:
  explicit PartialTap(size_t max_bytes = size_t{16} << 20) : max_bytes_(max_bytes) {}
  PartialTap(const PartialTap&) = delete;
  PartialTap& operator=(const PartialTap&) = delete;

  struct Read {
    uint64_t from = 0;      // the read asked for the first message at this sequence or later
    uint64_t sequence = 0;  // and got this one
    NatsMsgPtr msg;
  };

  void Push(uint64_t from, uint64_t sequence, NatsMsgPtr msg) {
    const size_t bytes = static_cast<size_t>(natsMsg_GetDataLength(msg.get()));
    {
      std::lock_guard lock(mu_);
      if (stopped_ || bytes_ + bytes > max_bytes_) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      bytes_ += bytes;
      queue_.push_back({from, sequence, std::move(msg)});
    }
    pushed_.notify_one();
  }

  // The queued message a read at `position` would return, waiting up to `wait` for one when
  // none is queued; messages before `position` are dropped on the way. A null msg when there is
  // none (or a gap lies between `position` and the first queued read): read for yourself.
  Read Take(uint64_t position, std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    DropBefore(position);
    if (queue_.empty() && wait.count() > 0) {
      pushed_.wait_for(lock, wait, [&] { return stopped_ || !queue_.empty(); });
      DropBefore(position);
    }
    if (queue_.empty() || queue_.front().from > position) return {};
    Read read = std::move(queue_.front());
    queue_.pop_front();
    bytes_ -= static_cast<size_t>(natsMsg_GetDataLength(read.msg.get()));
    return read;
  }

  // Wakes a Take and refuses later pushes (the history is stopping).
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      queue_.clear();
      bytes_ = 0;
    }
    pushed_.notify_all();
  }

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void DropBefore(uint64_t position) {  // mu_ held
    while (!queue_.empty() && queue_.front().sequence < position) {
      bytes_ -= static_cast<size_t>(natsMsg_GetDataLength(queue_.front().msg.get()));
      queue_.pop_front();
    }
  }

  const size_t max_bytes_;
  std::mutex mu_;
  std::condition_variable pushed_;
  std::deque<Read> queue_;  // guarded by mu_
  size_t bytes_ = 0;        // guarded by mu_
  bool stopped_ = false;    // guarded by mu_
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace rta::cluster
