#include "server/http/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace rta::server::http {

bool KeyedRateLimiter::Take(std::string_view key, uint64_t events, int64_t now_ms,
                            int64_t* retry_after_ms) {
  if (rate_ == 0) return true;
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    // A full sweep costs the whole table: at most one per 100 ms, so that a flood of new keys
    // against a full table costs a lookup each, not a scan each.
    if (buckets_.size() >= max_keys_ && (now_ms < next_sweep_ms_ || DropRefilled(now_ms) == 0)) {
      next_sweep_ms_ = std::max(next_sweep_ms_, now_ms + 100);
      *retry_after_ms = 1000;
      return false;
    }
    it = buckets_.emplace(std::string(key), Bucket{static_cast<double>(rate_), now_ms}).first;
  }
  Bucket& bucket = it->second;
  const double elapsed_s =
      static_cast<double>(std::max<int64_t>(0, now_ms - bucket.refilled_ms)) / 1000.0;
  bucket.balance = std::min<double>(rate_, bucket.balance + elapsed_s * rate_);
  bucket.refilled_ms = std::max(bucket.refilled_ms, now_ms);
  if (bucket.balance < 0) {
    *retry_after_ms = static_cast<int64_t>(std::ceil(-bucket.balance * 1000.0 / rate_));
    return false;
  }
  bucket.balance -= static_cast<double>(events);
  return true;
}

size_t KeyedRateLimiter::DropRefilled(int64_t now_ms) {
  size_t dropped = 0;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const Bucket& bucket = it->second;
    const double elapsed_s =
        static_cast<double>(std::max<int64_t>(0, now_ms - bucket.refilled_ms)) / 1000.0;
    if (bucket.balance + elapsed_s * rate_ >= rate_) {
      it = buckets_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

size_t KeyedRateLimiter::keys() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace rta::server::http
