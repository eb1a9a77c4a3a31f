#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace rta::auth {

// Per-token limits: events per second (a token bucket), open streams, open subscriptions. One
// client with a valid token must not take the whole server; the peer limits (per address) do
// not cover many clients sharing one token, nor one client spread over many addresses.
//
// The bucket admits a batch while its balance is not negative and then charges the whole batch
// (so a batch larger than a second's worth still passes, once, and the debt delays the next):
// the long-run rate is the limit whatever the batch sizes, with a burst of one second.
//
// Thread-safety: every method from any thread; one mutex over a map with an entry per token
// in use (a few per call at most, so contention stays far below the call costs around it).
class TokenLimits {
 public:
  struct Limits {
    uint32_t events_per_second = 0;  // 0: unlimited
    uint32_t max_streams = 0;        // 0: unlimited; streaming calls of every kind
    uint32_t max_subscriptions = 0;  // 0: unlimited; of those, subscriptions
  };
  explicit TokenLimits(Limits limits) : limits_(limits) {}

  // A streaming call of `token_id` starts; false (and *why) when over a limit. An empty token
  // id (authentication off) is never limited.
  bool OpenStream(const std::string& token_id, bool subscription, std::string* why);
  // Once per successful OpenStream.
  void CloseStream(const std::string& token_id, bool subscription);
  // `events` more events from the token at `now_ms`; false with *retry_after_ms when over the
  // rate.
  bool TakeEvents(const std::string& token_id, uint64_t events, int64_t now_ms,
                  int64_t* retry_after_ms);

  const Limits& limits() const { return limits_; }

 private:
  struct State {
    uint32_t streams = 0;
    uint32_t subscriptions = 0;
    double balance = 0;  // events that may still pass now; negative: debt
    int64_t refilled_ms = -1;
  };
  const Limits limits_;
  std::mutex mutex_;
  std::unordered_map<std::string, State> states_;  // guarded by mutex_
};

}  // namespace rta::auth
