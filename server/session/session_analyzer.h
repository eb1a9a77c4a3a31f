#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "analytics.pb.h"
#include "server/aggregator/aggregator.h"
#include "server/session/session_budget.h"

namespace rta::session {

// Thresholds of every rule; README.md next to this file explains each one.
struct AnalyzerConfig {
  uint32_t rage_click_count = 3;         // clicks on one target ...
  int64_t rage_click_window_ms = 1000;   // ... spanning at most this long
  uint32_t bot_burst_count = 10;         // actions ...
  int64_t bot_burst_window_ms = 1000;    // ... spanning at most this long
  uint32_t bot_regular_count = 20;       // actions whose intervals have ...
  double bot_regular_max_cv = 0.05;      // ... a coefficient of variation below this
  int64_t cart_abandon_ms = 30'000;      // add_to_cart with no checkout/purchase for this long
  int64_t bounce_idle_ms = 30 * 60'000;  // idle this long after a single page view
  int64_t session_idle_expiry_ms = 2 * 3600'000;  // state freed after this long without actions
  uint32_t max_sessions = 10'000;                 // per stream
  int64_t max_future_ms = 3600'000;               // action time further ahead than now is invalid
};

enum class ActionOutcome { kAnswered, kInvalid, kTooManySessions, kServerSessionBudget };

// Live analysis of the sessions multiplexed on one AnalyzeSession stream.
//
// Not thread-safe: one analyzer per stream, used from that stream's completion-queue thread
// (the shared SessionBudget is the only state it touches beyond its own, and that is atomic).
// Every method takes the server's current time, so tests drive time by hand. Memory is bounded:
// at most max_sessions sessions (and no more than the server-wide budget allows), each with
// fixed-size rings of recent actions (click targets kept as 64-bit hashes, not their text), and
// at most one pending timer entry per session and rule. Everything is freed with the analyzer,
// which also gives its sessions back to the budget.
class SessionAnalyzer {
 public:
  // Called for rage_click and bot_suspected (once per session) and for each cart abandonment,
  // with the event time of the action (or the server time of a timer) that raised it.
  using SignalSink = std::function<void(agg::SessionSignal, int64_t time_ms)>;

  // `budget` (may be null: no server-wide bound) must outlive the analyzer.
  SessionAnalyzer(AnalyzerConfig config, SignalSink sink, SessionBudget* budget = nullptr);
  ~SessionAnalyzer();
  SessionAnalyzer(const SessionAnalyzer&) = delete;
  SessionAnalyzer& operator=(const SessionAnalyzer&) = delete;

  // kAnswered: *result is the analysis after this action. kInvalid: *result carries the
  // session_id, the action's sequence and `error` = "<field>: <reason>"; no state changed.
  // kTooManySessions: the action starts a session beyond max_sessions; kServerSessionBudget: it
  // starts one while the server-wide budget is used up. *error_message says which limit.
  ActionOutcome OnAction(const analytics::UserAction& action, int64_t now_ms,
                         analytics::AnalysisResult* result, std::string* error_message);

  // Appends the server-initiated results due at now_ms (cart_abandonment_risk, bounce; their
  // action_sequence is 0) and frees sessions idle past session_idle_expiry_ms.
  void CollectDue(int64_t now_ms, std::vector<analytics::AnalysisResult>* out);

  // When CollectDue() next has something to do, if ever.
  std::optional<int64_t> NextDeadlineMs() const;

  size_t session_count() const { return sessions_.size(); }

 private:
  enum class TimerKind { kCartAbandon, kBounce, kExpire };
  static constexpr size_t kMaxRecentClicks = 16;
  struct ClickMark {
    uint64_t target_hash = 0;
    int64_t time_ms = 0;
  };
  struct Session {
    int64_t first_ms = 0;
    int64_t last_ms = 0;       // event time of the latest action
    int64_t last_seen_ms = 0;  // server time of the latest action
    uint64_t actions = 0;
    uint32_t page_views = 0;
    uint32_t interactions = 0;  // clicks, scrolls, searches
    analytics::FunnelStage stage = analytics::FUNNEL_STAGE_LANDING;
    bool bot_flagged = false;
    bool rage_seen = false;
    std::array<ClickMark, kMaxRecentClicks> recent_clicks{};  // ring of the last clicks
    uint32_t clicks_seen = 0;                                  // ring index: clicks_seen % 16
    std::deque<int64_t> recent_times;                          // action times, bounded
    int64_t cart_deadline_ms = 0;                              // 0: not armed
    int64_t bounce_deadline_ms = 0;                            // 0: not armed
    bool timer_queued[3] = {false, false, false};
  };
  struct TimerEntry {
    int64_t deadline_ms;
    TimerKind kind;
    std::string session_id;
    bool operator>(const TimerEntry& other) const { return deadline_ms > other.deadline_ms; }
  };

  bool Validate(const analytics::UserAction& action, int64_t now_ms, std::string* error) const;
  void ApplyRules(const std::string& id, Session& s, const analytics::UserAction& action,
                  int64_t time_ms, analytics::AnalysisResult* result);
  void Schedule(const std::string& id, Session& s, TimerKind kind, int64_t deadline_ms);
  int64_t Deadline(const Session& s, TimerKind kind) const;
  void Describe(const std::string& id, const Session& s, analytics::AnalysisResult* out) const;
  double EngagementScore(const Session& s) const;

  AnalyzerConfig config_;
  SignalSink sink_;
  SessionBudget* budget_;
  std::unordered_map<std::string, Session> sessions_;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
  uint64_t next_sequence_ = 1;
};

}  // namespace rta::session
