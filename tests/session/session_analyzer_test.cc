#include "server/session/session_analyzer.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using rta::agg::SessionSignal;
using rta::session::ActionOutcome;
using rta::session::AnalyzerConfig;
using rta::session::SessionAnalyzer;

namespace {

constexpr int64_t kStart = 1'700'000'000'000;

// An analyzer with a recording signal sink, and helpers to feed it actions at exact times.
struct Fixture {
  std::vector<std::pair<SessionSignal, int64_t>> signals;
  SessionAnalyzer analyzer;
  explicit Fixture(AnalyzerConfig config = {})
      : analyzer(config, [this](SessionSignal s, int64_t t) { signals.emplace_back(s, t); }) {}

  analytics::AnalysisResult Act(const std::string& session, const std::string& type,
                                int64_t offset_ms, const std::string& target = "/home",
                                ActionOutcome expected = ActionOutcome::kAnswered) {
    analytics::UserAction action;
    action.set_session_id(session);
    action.set_action_type(type);
    action.set_target(target);
    action.set_timestamp_ms(kStart + offset_ms);
    analytics::AnalysisResult result;
    std::string error;
    REQUIRE(analyzer.OnAction(action, kStart + offset_ms, &result, &error) == expected);
    return result;
  }
  std::vector<analytics::AnalysisResult> Due(int64_t offset_ms) {
    std::vector<analytics::AnalysisResult> out;
    analyzer.CollectDue(kStart + offset_ms, &out);
    return out;
  }
  size_t Count(SessionSignal signal) const {
    return std::count_if(signals.begin(), signals.end(),
                         [signal](const auto& s) { return s.first == signal; });
  }
};

// prefix + number (not `"literal" + std::string`: GCC 12 warns falsely, -Wrestrict).
std::string Numbered(std::string prefix, int number) {
  prefix += std::to_string(number);
  return prefix;
}

bool HasSignal(const analytics::AnalysisResult& result, const std::string& name) {
  for (const auto& s : result.signals()) {
    if (s.name() == name) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("rage_click: 3 clicks on one target within 1 s, both sides", "[session]") {
  Fixture f;
  SECTION("3 clicks spanning exactly 1000 ms") {
    CHECK_FALSE(HasSignal(f.Act("s", "click", 0, "#buy"), "rage_click"));
    CHECK_FALSE(HasSignal(f.Act("s", "click", 500, "#buy"), "rage_click"));
    const auto result = f.Act("s", "click", 1000, "#buy");
    CHECK(HasSignal(result, "rage_click"));
    CHECK(f.Count(SessionSignal::kRageClick) == 1);
  }
  SECTION("3 clicks spanning 1001 ms") {
    f.Act("s", "click", 0, "#buy");
    f.Act("s", "click", 500, "#buy");
    CHECK_FALSE(HasSignal(f.Act("s", "click", 1001, "#buy"), "rage_click"));
    CHECK(f.Count(SessionSignal::kRageClick) == 0);
  }
  SECTION("2 clicks within 1 s") {
    f.Act("s", "click", 0, "#buy");
    CHECK_FALSE(HasSignal(f.Act("s", "click", 10, "#buy"), "rage_click"));
  }
  SECTION("3 clicks on different targets") {
    f.Act("s", "click", 0, "#a");
    f.Act("s", "click", 100, "#b");
    CHECK_FALSE(HasSignal(f.Act("s", "click", 200, "#a"), "rage_click"));
  }
}

TEST_CASE("bot_suspected: a burst of 10 actions within 1 s, both sides", "[session]") {
  SECTION("10 actions spanning 1000 ms") {
    Fixture f;
    for (int i = 0; i < 9; ++i)
      CHECK_FALSE(HasSignal(f.Act("s", "scroll", i * 111), "bot_suspected"));
    CHECK(HasSignal(f.Act("s", "scroll", 1000), "bot_suspected"));
    CHECK(f.Count(SessionSignal::kBotSuspected) == 1);
    // Raised once per session.
    CHECK_FALSE(HasSignal(f.Act("s", "scroll", 1001), "bot_suspected"));
    CHECK(f.Count(SessionSignal::kBotSuspected) == 1);
  }
  SECTION("10 actions spanning 1001 ms") {
    Fixture f;
    for (int i = 0; i < 9; ++i) f.Act("s", "scroll", i * 111);
    CHECK_FALSE(HasSignal(f.Act("s", "scroll", 1001), "bot_suspected"));
  }
}

TEST_CASE("bot_suspected: 20 actions at near-identical intervals", "[session]") {
  SECTION("perfectly regular every 2 s") {
    Fixture f;
    bool flagged = false;
    for (int i = 0; i < 20; ++i) {
      const auto result = f.Act("s", "page_view", i * 2000, "/p" + std::to_string(i));
      if (i < 19) CHECK_FALSE(HasSignal(result, "bot_suspected"));
      flagged = HasSignal(result, "bot_suspected");
    }
    CHECK(flagged);
  }
  SECTION("human jitter (cv well above 0.05)") {
    Fixture f;
    int64_t t = 0;
    for (int i = 0; i < 25; ++i) {
      t += (i % 2 == 0) ? 1500 : 2500;  // cv = 0.25
      CHECK_FALSE(HasSignal(f.Act("s", "page_view", t), "bot_suspected"));
    }
  }
}

TEST_CASE("cart_abandonment_risk fires from the timer, without a new action", "[session]") {
  Fixture f;
  f.Act("s", "page_view", 0, "/products/1");
  f.Act("s", "add_to_cart", 1000, "/products/1");
  REQUIRE(f.analyzer.NextDeadlineMs().has_value());
  CHECK(*f.analyzer.NextDeadlineMs() == kStart + 31'000);
  SECTION("30 s later with no checkout: exactly once") {
    CHECK(f.Due(30'999).empty());
    const auto due = f.Due(31'000);
    REQUIRE(due.size() == 1);
    CHECK(due[0].action_sequence() == 0);
    CHECK(due[0].session_id() == "s");
    CHECK(HasSignal(due[0], "cart_abandonment_risk"));
    CHECK(due[0].funnel_stage() == analytics::FUNNEL_STAGE_CART);
    CHECK(f.Count(SessionSignal::kCartAbandonment) == 1);
    CHECK(f.Due(100'000).empty());
  }
  SECTION("a checkout at 29.999 s disarms it") {
    f.Act("s", "checkout", 30'999);
    CHECK(f.Due(40'000).empty());
    CHECK(f.Count(SessionSignal::kCartAbandonment) == 0);
  }
  SECTION("a second add_to_cart re-arms from its own time") {
    f.Act("s", "add_to_cart", 20'000);
    CHECK(f.Due(31'000).empty());
    CHECK(f.Due(50'000).size() == 1);
  }
}

TEST_CASE("bounce: idle 30 minutes after a single page view", "[session]") {
  Fixture f;
  f.Act("lone", "page_view", 0);
  f.Act("busy", "page_view", 0);
  f.Act("busy", "page_view", 60'000);
  CHECK(f.Due(30 * 60'000 - 1).empty());
  const auto due = f.Due(30 * 60'000);
  REQUIRE(due.size() == 1);
  CHECK(due[0].session_id() == "lone");
  CHECK(HasSignal(due[0], "bounce"));
  CHECK(due[0].action_sequence() == 0);
}

TEST_CASE("converted on purchase, funnel stages advance and never go back", "[session]") {
  Fixture f;
  CHECK(f.Act("s", "page_view", 0, "/").funnel_stage() == analytics::FUNNEL_STAGE_LANDING);
  CHECK(f.Act("s", "page_view", 5000, "/products/7").funnel_stage() ==
        analytics::FUNNEL_STAGE_PRODUCT);
  CHECK(f.Act("s", "add_to_cart", 9000).funnel_stage() == analytics::FUNNEL_STAGE_CART);
  CHECK(f.Act("s", "checkout", 20'000).funnel_stage() == analytics::FUNNEL_STAGE_CHECKOUT);
  const auto bought = f.Act("s", "purchase", 30'000);
  CHECK(bought.funnel_stage() == analytics::FUNNEL_STAGE_CONVERTED);
  CHECK(HasSignal(bought, "converted"));
  CHECK(bought.duration_seconds() == Approx(30.0));
  CHECK(bought.action_count() == 5);
  CHECK(f.Act("s", "page_view", 31'000, "/").funnel_stage() == analytics::FUNNEL_STAGE_CONVERTED);
  CHECK(bought.engagement_score() > 0);
  CHECK(bought.engagement_score() <= 100);
}

TEST_CASE("sessions interleaved on one stream are analysed separately", "[session]") {
  Fixture f;
  f.Act("a", "click", 0, "#x");
  f.Act("b", "click", 100, "#x");
  f.Act("a", "click", 200, "#x");
  const auto b2 = f.Act("b", "click", 300, "#x");
  CHECK_FALSE(HasSignal(b2, "rage_click"));
  CHECK(b2.action_count() == 2);
  const auto a3 = f.Act("a", "click", 400, "#x");
  CHECK(HasSignal(a3, "rage_click"));
  CHECK(a3.session_id() == "a");
  CHECK(f.analyzer.session_count() == 2);
}

TEST_CASE("state is bounded: session limit and idle expiry", "[session]") {
  AnalyzerConfig config;
  config.max_sessions = 3;
  config.session_idle_expiry_ms = 60'000;
  Fixture f(config);
  f.Act("s1", "page_view", 0);
  f.Act("s2", "click", 0);
  f.Act("s3", "click", 0);
  f.Act("s4", "click", 10, "/home", ActionOutcome::kTooManySessions);
  f.Act("s1", "click", 30'000);  // existing sessions go on
  f.Due(60'000);                 // s2, s3 idle for 60 s: freed
  CHECK(f.analyzer.session_count() == 1);
  f.Act("s4", "click", 60'001);  // room again
  CHECK(f.analyzer.session_count() == 2);
  f.Due(200'000);
  CHECK(f.analyzer.session_count() == 0);
  CHECK_FALSE(f.analyzer.NextDeadlineMs().has_value());
}

TEST_CASE("invalid actions name the field and change nothing", "[session]") {
  Fixture f;
  analytics::UserAction action;
  analytics::AnalysisResult result;
  std::string error;
  SECTION("missing session_id") {
    action.set_action_type("click");
    CHECK(f.analyzer.OnAction(action, kStart, &result, &error) == ActionOutcome::kInvalid);
    CHECK_THAT(result.error(), Catch::StartsWith("session_id"));
  }
  SECTION("bad action_type") {
    action.set_session_id("s");
    action.set_action_type("Click Me");
    action.set_sequence(42);
    CHECK(f.analyzer.OnAction(action, kStart, &result, &error) == ActionOutcome::kInvalid);
    CHECK_THAT(result.error(), Catch::StartsWith("action_type"));
    CHECK(result.action_sequence() == 42);
  }
  SECTION("non-finite value") {
    action.set_session_id("s");
    action.set_action_type("purchase");
    action.set_value(std::numeric_limits<double>::infinity());
    CHECK(f.analyzer.OnAction(action, kStart, &result, &error) == ActionOutcome::kInvalid);
    CHECK_THAT(result.error(), Catch::StartsWith("value"));
  }
  SECTION("far future") {
    action.set_session_id("s");
    action.set_action_type("click");
    action.set_timestamp_ms(kStart + 2 * 3600'000);
    CHECK(f.analyzer.OnAction(action, kStart, &result, &error) == ActionOutcome::kInvalid);
    CHECK_THAT(result.error(), Catch::StartsWith("timestamp_ms"));
  }
  CHECK(f.analyzer.session_count() == 0);
}

TEST_CASE("rage_click compares click targets by hash: long targets, shared prefixes",
          "[session][limits]") {
  Fixture f;
  // 2,048-byte targets (the longest valid) that differ only in their last byte are different
  // targets; the same long target three times is a rage click.
  const std::string a = std::string(2047, 'x') + "a";
  const std::string b = std::string(2047, 'x') + "b";
  CHECK_FALSE(HasSignal(f.Act("s", "click", 0, a), "rage_click"));
  CHECK_FALSE(HasSignal(f.Act("s", "click", 100, b), "rage_click"));
  CHECK_FALSE(HasSignal(f.Act("s", "click", 200, b), "rage_click"));
  CHECK_FALSE(HasSignal(f.Act("s", "click", 300, a), "rage_click"));
  const auto result = f.Act("s", "click", 400, a);
  REQUIRE(HasSignal(result, "rage_click"));
  CHECK(f.Count(SessionSignal::kRageClick) == 1);

  SECTION("only the last 16 clicks count") {
    Fixture g;
    g.Act("t", "click", 0, "#x");
    g.Act("t", "click", 1, "#x");
    for (int i = 0; i < 16; ++i) g.Act("t", "click", 2 + i, Numbered("#other-", i));
    // The first two left the ring: it takes three new ones.
    CHECK_FALSE(HasSignal(g.Act("t", "click", 30, "#x"), "rage_click"));
    CHECK_FALSE(HasSignal(g.Act("t", "click", 31, "#x"), "rage_click"));
    CHECK(HasSignal(g.Act("t", "click", 32, "#x"), "rage_click"));
  }
}

TEST_CASE("a server-wide session budget is shared by every analyzer and given back",
          "[session][limits]") {
  rta::session::SessionBudget budget(3);
  auto sink = [](SessionSignal, int64_t) {};
  AnalyzerConfig config;
  config.session_idle_expiry_ms = 60'000;
  auto act = [](SessionAnalyzer& analyzer, const std::string& session, int64_t offset_ms,
                std::string* error = nullptr) {
    analytics::UserAction action;
    action.set_session_id(session);
    action.set_action_type("click");
    analytics::AnalysisResult result;
    std::string message;
    const ActionOutcome outcome = analyzer.OnAction(action, kStart + offset_ms, &result, &message);
    if (error != nullptr) *error = message;
    return outcome;
  };
  auto first = std::make_unique<SessionAnalyzer>(config, sink, &budget);
  SessionAnalyzer second(config, sink, &budget);
  CHECK(act(*first, "a1", 0) == ActionOutcome::kAnswered);
  CHECK(act(*first, "a2", 0) == ActionOutcome::kAnswered);
  CHECK(act(second, "b1", 0) == ActionOutcome::kAnswered);
  CHECK(budget.in_use() == 3);
  std::string error;
  CHECK(act(second, "b2", 10, &error) == ActionOutcome::kServerSessionBudget);
  CHECK_THAT(error, Catch::Contains("max_analyze_sessions (3)"));
  CHECK(budget.refused() == 1);
  CHECK(act(second, "b1", 20) == ActionOutcome::kAnswered);  // tracked sessions go on
  CHECK(second.session_count() == 1);

  SECTION("an analyzer that ends gives its sessions back") {
    first.reset();
    CHECK(budget.in_use() == 1);
    CHECK(act(second, "b2", 30) == ActionOutcome::kAnswered);
    CHECK(budget.in_use() == 2);
  }
  SECTION("sessions that expire are given back") {
    std::vector<analytics::AnalysisResult> due;
    first->CollectDue(kStart + 60'000, &due);  // a1, a2 idle for 60 s
    CHECK(first->session_count() == 0);
    CHECK(budget.in_use() == 1);
    CHECK(act(second, "b2", 60'001) == ActionOutcome::kAnswered);
  }
}

TEST_CASE("the session budget is exact when analyzers on many threads race for it",
          "[session][limits]") {
  rta::session::SessionBudget budget(1000);
  constexpr int kThreads = 4;
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  {
    std::vector<std::unique_ptr<SessionAnalyzer>> analyzers;
    for (int t = 0; t < kThreads; ++t) {
      analyzers.push_back(std::make_unique<SessionAnalyzer>(
          AnalyzerConfig{}, [](SessionSignal, int64_t) {}, &budget));
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 600; ++i) {
          analytics::UserAction action;
          action.set_session_id(Numbered(Numbered("t", t) + "-", i));
          action.set_action_type("click");
          analytics::AnalysisResult result;
          std::string error;
          switch (analyzers[t]->OnAction(action, kStart, &result, &error)) {
            case ActionOutcome::kAnswered:
              ++admitted;
              break;
            case ActionOutcome::kServerSessionBudget:
              ++refused;
              break;
            default:
              break;
          }
        }
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(admitted.load() == 1000);
    CHECK(refused.load() == kThreads * 600 - 1000);
    CHECK(budget.in_use() == 1000);
  }
  CHECK(budget.in_use() == 0);  // every analyzer gave its sessions back
}
