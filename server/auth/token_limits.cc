#include "server/auth/token_limits.h"

#include <algorithm>
#include <cmath>

namespace rta::auth {

bool TokenLimits::OpenStream(const std::string& token_id, bool subscription, std::string* why) {
  if (token_id.empty()) return true;
  std::lock_guard lock(mutex_);
  State& state = states_[token_id];
  if (limits_.max_streams != 0 && state.streams >= limits_.max_streams) {
    *why = "token " + token_id + " has " + std::to_string(state.streams) +
           " open streams, its limit (--token-max-streams); close some or retry later";
    return false;
  }
  if (subscription && limits_.max_subscriptions != 0 &&
      state.subscriptions >= limits_.max_subscriptions) {
    *why = "token " + token_id + " has " + std::to_string(state.subscriptions) +
           " open subscriptions, its limit (--token-max-subscriptions); close some or retry later";
    return false;
  }
  ++state.streams;
  if (subscription) ++state.subscriptions;
  return true;
}

void TokenLimits::CloseStream(const std::string& token_id, bool subscription) {
  if (token_id.empty()) return;
  std::lock_guard lock(mutex_);
  const auto found = states_.find(token_id);
  if (found == states_.end()) return;
  State& state = found->second;
  if (state.streams > 0) --state.streams;
  if (subscription && state.subscriptions > 0) --state.subscriptions;
  // Forget a token with nothing open and no debt: the map holds only tokens in use.
  if (state.streams == 0 && (limits_.events_per_second == 0 || state.balance >= 0)) {
    states_.erase(found);
  }
}

bool TokenLimits::TakeEvents(const std::string& token_id, uint64_t events, int64_t now_ms,
                             int64_t* retry_after_ms) {
  if (token_id.empty() || limits_.events_per_second == 0) return true;
  const double rate = limits_.events_per_second;
  std::lock_guard lock(mutex_);
  State& state = states_[token_id];
  if (state.refilled_ms < 0) {
    state.balance = rate;  // a full second's burst to start
  } else if (now_ms > state.refilled_ms) {
    state.balance = std::min(rate, state.balance + rate * (now_ms - state.refilled_ms) / 1000.0);
  }
  state.refilled_ms = std::max(state.refilled_ms, now_ms);
  if (state.balance < 0) {
    *retry_after_ms = static_cast<int64_t>(std::ceil(-state.balance / rate * 1000.0));
    return false;
  }
  state.balance -= static_cast<double>(events);
  return true;
}

}  // namespace rta::auth
