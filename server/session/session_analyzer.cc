#include "server/session/session_analyzer.h"

#include <algorithm>
#include <cmath>

#include "server/aggregator/hash.h"

namespace rta::session {
namespace {

// Click targets are compared by hash: a session's last 16 clicks cost 256 bytes whatever the
// targets' length. A collision (2^-64 per pair) could only make this session's own clicks look
// alike; the seed needs no secret for that.
constexpr uint64_t kTargetSeed = 0x6a09e667f3bcc908ull;

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
           c == '-';
  });
}

void AddSignal(analytics::AnalysisResult* result, const char* name, std::string reason) {
  analytics::Signal* signal = result->add_signals();
  signal->set_name(name);
  signal->set_reason(std::move(reason));
}

bool IsProductPage(const std::string& target) {
  return target.find("/product") != std::string::npos;
}

}  // namespace

SessionAnalyzer::SessionAnalyzer(AnalyzerConfig config, SignalSink sink, SessionBudget* budget)
    : config_(config), sink_(std::move(sink)), budget_(budget) {}

SessionAnalyzer::~SessionAnalyzer() {
  if (budget_ != nullptr) budget_->Release(sessions_.size());
}

bool SessionAnalyzer::Validate(const analytics::UserAction& action, int64_t now_ms,
                               std::string* error) const {
  if (action.session_id().empty()) {
    *error = "session_id: required";
  } else if (action.session_id().size() > 128) {
    *error = "session_id: longer than 128 bytes";
  } else if (!ValidName(action.action_type())) {
    *error = "action_type: '" + action.action_type().substr(0, 64) +
             "' is not 1-64 characters of [a-z0-9_.:-]";
  } else if (action.target().size() > 2048) {
    *error = "target: longer than 2048 bytes";
  } else if (action.visitor_id().size() > 128) {
    *error = "visitor_id: longer than 128 bytes";
  } else if (!std::isfinite(action.value())) {
    *error = "value: not a finite number";
  } else if (action.timestamp_ms() < 0) {
    *error = "timestamp_ms: negative";
  } else if (action.timestamp_ms() > now_ms + config_.max_future_ms) {
    *error = "timestamp_ms: more than " + std::to_string(config_.max_future_ms / 1000) +
             " s in the future";
  } else {
    return true;
  }
  return false;
}

ActionOutcome SessionAnalyzer::OnAction(const analytics::UserAction& action, int64_t now_ms,
                                        analytics::AnalysisResult* result,
                                        std::string* error_message) {
  const uint64_t sequence = action.sequence() != 0 ? action.sequence() : next_sequence_;
  ++next_sequence_;
  std::string error;
  if (!Validate(action, now_ms, &error)) {
    result->set_session_id(action.session_id().substr(0, 128));
    result->set_action_sequence(sequence);
    result->set_error(std::move(error));
    return ActionOutcome::kInvalid;
  }
  auto it = sessions_.find(action.session_id());
  if (it == sessions_.end()) {
    if (sessions_.size() >= config_.max_sessions) {
      *error_message = "this stream already tracks max_sessions (" +
                       std::to_string(config_.max_sessions) +
                       ") sessions; open another stream or let idle sessions expire";
      return ActionOutcome::kTooManySessions;
    }
    if (budget_ != nullptr && !budget_->TryAcquire()) {
      *error_message = "the server already tracks max_analyze_sessions (" +
                       std::to_string(budget_->limit()) +
                       ") sessions over all AnalyzeSession streams; retry later";
      return ActionOutcome::kServerSessionBudget;
    }
    it = sessions_.emplace(action.session_id(), Session{}).first;
  }
  const std::string& id = it->first;
  Session& s = it->second;
  const int64_t time_ms = action.timestamp_ms() != 0 ? action.timestamp_ms() : now_ms;
  if (s.actions == 0) s.first_ms = time_ms;
  s.first_ms = std::min(s.first_ms, time_ms);
  s.last_ms = std::max(s.last_ms, time_ms);
  s.last_seen_ms = now_ms;
  ++s.actions;
  result->set_action_sequence(sequence);
  ApplyRules(id, s, action, time_ms, result);
  Schedule(id, s, TimerKind::kExpire, now_ms + config_.session_idle_expiry_ms);
  Describe(id, s, result);
  return ActionOutcome::kAnswered;
}

void SessionAnalyzer::ApplyRules(const std::string& id, Session& s,
                                 const analytics::UserAction& action, int64_t time_ms,
                                 analytics::AnalysisResult* result) {
  const std::string& type = action.action_type();
  // Funnel: the furthest stage reached; it never goes back.
  auto reach = [&s](analytics::FunnelStage stage) { s.stage = std::max(s.stage, stage); };
  if (type == "page_view") {
    ++s.page_views;
    if (s.page_views >= 2) reach(analytics::FUNNEL_STAGE_BROWSING);
    if (IsProductPage(action.target())) reach(analytics::FUNNEL_STAGE_PRODUCT);
  } else if (type == "click" || type == "scroll" || type == "search") {
    ++s.interactions;
    reach(analytics::FUNNEL_STAGE_BROWSING);
  } else if (type == "add_to_cart") {
    reach(analytics::FUNNEL_STAGE_CART);
  } else if (type == "checkout") {
    reach(analytics::FUNNEL_STAGE_CHECKOUT);
  } else if (type == "purchase") {
    reach(analytics::FUNNEL_STAGE_CONVERTED);
  }

  // rage_click: rage_click_count clicks on one target within rage_click_window_ms.
  if (type == "click") {
    const uint64_t target_hash = agg::detail::HashBytes(action.target(), kTargetSeed);
    s.recent_clicks[s.clicks_seen % kMaxRecentClicks] = {target_hash, time_ms};
    ++s.clicks_seen;
    const size_t kept = std::min<size_t>(s.clicks_seen, kMaxRecentClicks);
    uint32_t same = 0;
    for (size_t i = 0; i < kept; ++i) {
      const ClickMark& mark = s.recent_clicks[i];
      if (mark.target_hash == target_hash && time_ms - mark.time_ms <= config_.rage_click_window_ms)
        ++same;
    }
    if (same >= config_.rage_click_count) {
      AddSignal(result, "rage_click",
                std::to_string(same) + " clicks on '" + action.target().substr(0, 100) +
                    "' within " + std::to_string(config_.rage_click_window_ms) + " ms");
      if (!s.rage_seen) sink_(agg::SessionSignal::kRageClick, time_ms);
      s.rage_seen = true;
    }
  }

  // bot_suspected: a burst, or machine-regular intervals. Raised once per session.
  const size_t keep = std::max(config_.bot_burst_count, config_.bot_regular_count);
  s.recent_times.push_back(time_ms);
  if (s.recent_times.size() > keep) s.recent_times.pop_front();
  if (!s.bot_flagged) {
    std::string reason;
    const size_t n = s.recent_times.size();
    if (n >= config_.bot_burst_count &&
        s.recent_times[n - 1] - s.recent_times[n - config_.bot_burst_count] <=
            config_.bot_burst_window_ms) {
      reason = std::to_string(config_.bot_burst_count) + " actions within " +
               std::to_string(s.recent_times[n - 1] - s.recent_times[n - config_.bot_burst_count]) +
               " ms";
    } else if (n >= config_.bot_regular_count && config_.bot_regular_count >= 3) {
      const size_t first = n - config_.bot_regular_count;
      double sum = 0, sum_sq = 0;
      const double intervals = static_cast<double>(config_.bot_regular_count - 1);
      for (size_t i = first + 1; i < n; ++i) {
        const double d = static_cast<double>(s.recent_times[i] - s.recent_times[i - 1]);
        sum += d;
        sum_sq += d * d;
      }
      const double mean = sum / intervals;
      const double variance = std::max(0.0, sum_sq / intervals - mean * mean);
      const double cv = mean > 0 ? std::sqrt(variance) / mean : 0;
      if (mean > 0 && cv < config_.bot_regular_max_cv) {
        char text[128];
        std::snprintf(text, sizeof text,
                      "%u actions at near-identical intervals (mean %.0f ms, cv %.3f)",
                      config_.bot_regular_count, mean, cv);
        reason = text;
      }
    }
    if (!reason.empty()) {
      s.bot_flagged = true;
      AddSignal(result, "bot_suspected", std::move(reason));
      sink_(agg::SessionSignal::kBotSuspected, time_ms);
    }
  }

  // Timers: a cart waits for checkout/purchase; a lone page view waits for a second action.
  if (type == "add_to_cart") {
    s.cart_deadline_ms = s.last_seen_ms + config_.cart_abandon_ms;
    Schedule(id, s, TimerKind::kCartAbandon, s.cart_deadline_ms);
  } else if (type == "checkout" || type == "purchase") {
    s.cart_deadline_ms = 0;
  }
  if (s.actions == 1 && type == "page_view") {
    s.bounce_deadline_ms = s.last_seen_ms + config_.bounce_idle_ms;
    Schedule(id, s, TimerKind::kBounce, s.bounce_deadline_ms);
  } else {
    s.bounce_deadline_ms = 0;
  }

  if (type == "purchase") {
    char text[96];
    std::snprintf(text, sizeof text, "purchase of %.2f", action.value());
    AddSignal(result, "converted", text);
  }
}

void SessionAnalyzer::Schedule(const std::string& id, Session& s, TimerKind kind,
                               int64_t deadline_ms) {
  // At most one entry per session and rule: a queued entry that turns out early re-queues itself
  // at the current deadline when it is popped (see CollectDue).
  bool& queued = s.timer_queued[static_cast<int>(kind)];
  if (queued) return;
  queued = true;
  timers_.push({deadline_ms, kind, id});
}

int64_t SessionAnalyzer::Deadline(const Session& s, TimerKind kind) const {
  switch (kind) {
    case TimerKind::kCartAbandon:
      return s.cart_deadline_ms;
    case TimerKind::kBounce:
      return s.bounce_deadline_ms;
    case TimerKind::kExpire:
      return s.last_seen_ms + config_.session_idle_expiry_ms;
  }
  return 0;
}

void SessionAnalyzer::CollectDue(int64_t now_ms, std::vector<analytics::AnalysisResult>* out) {
  while (!timers_.empty() && timers_.top().deadline_ms <= now_ms) {
    TimerEntry entry = timers_.top();
    timers_.pop();
    auto it = sessions_.find(entry.session_id);
    if (it == sessions_.end()) continue;  // the session expired meanwhile
    Session& s = it->second;
    s.timer_queued[static_cast<int>(entry.kind)] = false;
    const int64_t deadline = Deadline(s, entry.kind);
    if (deadline == 0) continue;  // disarmed
    if (deadline > now_ms) {      // moved later since this entry was queued
      Schedule(entry.session_id, s, entry.kind, deadline);
      continue;
    }
    switch (entry.kind) {
      case TimerKind::kExpire:
        sessions_.erase(it);
        if (budget_ != nullptr) budget_->Release(1);
        continue;
      case TimerKind::kCartAbandon: {
        s.cart_deadline_ms = 0;
        analytics::AnalysisResult& result = out->emplace_back();
        AddSignal(&result, "cart_abandonment_risk",
                  "add_to_cart " + std::to_string(config_.cart_abandon_ms / 1000) +
                      " s ago with no checkout or purchase");
        Describe(entry.session_id, s, &result);
        sink_(agg::SessionSignal::kCartAbandonment, now_ms);
        break;
      }
      case TimerKind::kBounce: {
        s.bounce_deadline_ms = 0;
        analytics::AnalysisResult& result = out->emplace_back();
        AddSignal(&result, "bounce",
                  "idle " + std::to_string(config_.bounce_idle_ms / 60'000) +
                      " min after a single page view");
        Describe(entry.session_id, s, &result);
        break;
      }
    }
  }
  // Drop leading entries that can no longer fire (session gone, rule disarmed), so that
  // NextDeadlineMs() does not wake the server for nothing.
  while (!timers_.empty()) {
    const TimerEntry& top = timers_.top();
    auto it = sessions_.find(top.session_id);
    if (it != sessions_.end() && Deadline(it->second, top.kind) != 0) break;
    if (it != sessions_.end()) it->second.timer_queued[static_cast<int>(top.kind)] = false;
    timers_.pop();
  }
}

std::optional<int64_t> SessionAnalyzer::NextDeadlineMs() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.top().deadline_ms;
}

double SessionAnalyzer::EngagementScore(const Session& s) const {
  static constexpr double kStageBonus[] = {0, 0, 5, 10, 15, 18, 20};
  const double duration_s = static_cast<double>(s.last_ms - s.first_ms) / 1000.0;
  double score = std::min(40.0, 4.0 * s.page_views) + std::min(20.0, 2.0 * s.interactions) +
                 std::min(20.0, duration_s / 15.0) + kStageBonus[s.stage];
  if (s.bot_flagged) score -= 30;
  if (s.rage_seen) score -= 10;
  return std::clamp(score, 0.0, 100.0);
}

void SessionAnalyzer::Describe(const std::string& id, const Session& s,
                               analytics::AnalysisResult* out) const {
  out->set_session_id(id);
  out->set_engagement_score(EngagementScore(s));
  out->set_funnel_stage(s.stage);
  out->set_duration_seconds(static_cast<double>(s.last_ms - s.first_ms) / 1000.0);
  out->set_action_count(s.actions);
}

}  // namespace rta::session
