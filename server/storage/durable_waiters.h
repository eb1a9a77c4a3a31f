#pragma once

#include <functional>
#include <map>
#include <mutex>

#include "server/storage/event_log.h"

namespace rta::storage {

// The callbacks of EventLog::WhenDurable, shared by the log implementations: each called once,
// in Lsn order across threads. The writer fires them as durability advances; fired_ moves up
// only once a round's callbacks have all run (a waiter added meanwhile goes into the next
// round), and Add calls back at once only up to fired_. After Close, Add answers at once
// whether the record is durable. Thread-safe; callbacks run outside the lock.
class DurableWaiters {
 public:
  explicit DurableWaiters(Lsn durable) : fired_(durable) {}

  void Add(Lsn lsn, std::function<void(bool)> done) {
    bool result;
    {
      std::lock_guard lock(mu_);
      if (fired_ >= lsn) {
        result = true;
      } else if (closed_) {
        result = closed_durable_ >= lsn;
      } else {
        waiters_.emplace(lsn, std::move(done));
        return;
      }
    }
    done(result);
  }

  // The writer: everything up to `durable` is durable.
  void FireUpTo(Lsn durable) {
    std::vector<std::function<void(bool)>> ready;
    for (;;) {
      ready.clear();
      {
        std::lock_guard lock(mu_);
        auto end = waiters_.upper_bound(durable);
        for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
        waiters_.erase(waiters_.begin(), end);
        if (ready.empty()) {
          if (durable > fired_) fired_ = durable;
          return;
        }
      }
      for (auto& done : ready) done(true);
    }
  }

  // The writer has stopped with `durable` durable: every waiter is answered, and later ones at
  // once.
  void Close(Lsn durable) {
    std::multimap<Lsn, std::function<void(bool)>> rest;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      closed_durable_ = durable;
      rest.swap(waiters_);
    }
    for (auto& [lsn, done] : rest) done(lsn <= durable);
  }

 private:
  std::mutex mu_;
  std::multimap<Lsn, std::function<void(bool)>> waiters_;
  Lsn fired_;  // every callback up to here has run
  bool closed_ = false;
  Lsn closed_durable_ = 0;
};

}  // namespace rta::storage
