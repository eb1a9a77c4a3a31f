#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rta::server::http {

// Events per second per key (a client address, a site key): one token bucket each, in a table
// with a bound, because the keys come from the network and anyone can make up new ones.
//
// The bucket admits a request while its balance is not negative and then charges all of its
// events (the same rule as auth::TokenLimits): the long-run rate is the limit whatever the batch
// sizes, with a burst of one second. A key whose bucket has refilled holds nothing a new bucket
// would not, so when the table is full such keys are dropped to make room; if none can be, the
// new key is refused until one can (the table is full of keys that are all over their rate).
//
// Thread-safety: every method from any thread (one mutex; one lookup per HTTP request).
class KeyedRateLimiter {
 public:
  // events_per_second 0: unlimited (Take always admits, nothing is stored).
  KeyedRateLimiter(uint32_t events_per_second, size_t max_keys)
      : rate_(events_per_second), max_keys_(max_keys) {}

  // `events` more from `key` at `now_ms`: true, or false with *retry_after_ms.
  bool Take(std::string_view key, uint64_t events, int64_t now_ms, int64_t* retry_after_ms);

  uint32_t rate() const { return rate_; }
  size_t keys() const;

 private:
  struct Bucket {
    double balance = 0;  // events that may still pass now; negative: debt
    int64_t refilled_ms = 0;
  };
  // Drops every bucket that would be full at now_ms; returns how many.
  size_t DropRefilled(int64_t now_ms);

  const uint32_t rate_;
  const size_t max_keys_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;  // guarded by mutex_
  int64_t next_sweep_ms_ = 0;                        // guarded by mutex_
};

}  // namespace rta::server::http
