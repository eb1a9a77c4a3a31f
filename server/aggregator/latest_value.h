#pragma once

#include <memory>
#include <mutex>
#include <utility>

namespace rta::agg {

// The newest of a series of immutable objects, published by one thread and read by any number.
// A mutex guards only the pointer copy (nanoseconds, never on the ingest path). Chosen over
// libstdc++ 12's std::atomic<std::shared_ptr>, whose internal spin lock ThreadSanitizer cannot
// see, so that the tsan preset checks this hand-off instead of reporting it falsely.
template <typename T>
class LatestValue {
 public:
  explicit LatestValue(std::shared_ptr<const T> initial) : value_(std::move(initial)) {}
  std::shared_ptr<const T> Get() const {
    std::lock_guard lock(mutex_);
    return value_;
  }
  void Set(std::shared_ptr<const T> value) {
    std::shared_ptr<const T> old;
    {
      std::lock_guard lock(mutex_);
      old = std::exchange(value_, std::move(value));
    }
    // `old` is released here, outside the lock: the last reference may free a large object.
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> value_;  // guarded by mutex_
};

}  // namespace rta::agg
