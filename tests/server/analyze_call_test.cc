// Integration tests of AnalyzeSession (analyze_call.cc): the real server on an ephemeral
// loopback port, real gRPC stubs, and the Prometheus endpoint over HTTP.
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>

#include <catch2/catch.hpp>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"

using rta::testing::DeadlineContext;
using rta::testing::NowMs;
using rta::testing::ScrapeValue;
using rta::testing::ServerHarness;

namespace {

analytics::UserAction Action(const std::string& session, const std::string& type,
                             const std::string& target, int64_t time_ms) {
  analytics::UserAction action;
  action.set_session_id(session);
  action.set_visitor_id("v-" + session);
  action.set_action_type(type);
  action.set_target(target);
  action.set_timestamp_ms(time_ms);
  return action;
}

bool HasSignal(const analytics::AnalysisResult& result, const std::string& name) {
  for (const auto& s : result.signals()) {
    if (s.name() == name) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("AnalyzeSession answers each action in order and raises timers on its own",
          "[server][integration][analyze]") {
  ServerHarness h;
  auto stub = h.NewStub();
  auto context = DeadlineContext(20);
  auto stream = stub->AnalyzeSession(context.get());
  const int64_t now = h.clock().NowMs();
  // Two sessions interleaved on one stream; "a" rage-clicks.
  REQUIRE(stream->Write(Action("a", "click", "#buy", now)));
  REQUIRE(stream->Write(Action("b", "page_view", "/", now)));
  REQUIRE(stream->Write(Action("a", "click", "#buy", now + 200)));
  REQUIRE(stream->Write(Action("a", "click", "#buy", now + 400)));
  REQUIRE(stream->Write(Action("a", "Not Valid", "#buy", now + 500)));
  REQUIRE(stream->Write(Action("c", "add_to_cart", "/products/1", now)));
  analytics::AnalysisResult result;
  std::vector<analytics::AnalysisResult> answers;
  for (int i = 0; i < 6; ++i) {
    REQUIRE(stream->Read(&result));
    answers.push_back(result);
  }
  for (int i = 0; i < 6; ++i) CHECK(answers[i].action_sequence() == static_cast<uint64_t>(i + 1));
  CHECK(answers[0].session_id() == "a");
  CHECK(answers[1].session_id() == "b");
  CHECK_FALSE(HasSignal(answers[2], "rage_click"));
  CHECK(HasSignal(answers[3], "rage_click"));
  CHECK(answers[3].action_count() == 3);
  CHECK_THAT(answers[4].error(), Catch::StartsWith("action_type"));  // the stream goes on
  CHECK(answers[5].funnel_stage() == analytics::FUNNEL_STAGE_CART);

  // 30 s later, with no new action, the server tells us the cart is at risk.
  h.clock().AdvanceMs(30'000);
  REQUIRE(stream->Read(&result));
  CHECK(result.action_sequence() == 0);
  CHECK(result.session_id() == "c");
  CHECK(HasSignal(result, "cart_abandonment_risk"));

  stream->WritesDone();
  CHECK(stream->Finish().ok());
  // The signals reach the aggregator and Prometheus.
  CHECK(h.Metric("rage_clicks", analytics::WINDOW_TOTAL) == 1);
  CHECK(h.Metric("cart_abandonments", analytics::WINDOW_TOTAL) == 1);
  CHECK(ScrapeValue(h, R"(analytics_session_signals_total{signal="rage_click"})") == 1);
  CHECK(ScrapeValue(h, R"(analytics_session_signals_total{signal="cart_abandonment_risk"})") == 1);
}

TEST_CASE("AnalyzeSession refuses a session beyond the per-stream limit",
          "[server][integration][analyze]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_sessions_per_analyze_stream = 2;
  ServerHarness h(config);
  auto stub = h.NewStub();
  auto context = DeadlineContext(20);
  auto stream = stub->AnalyzeSession(context.get());
  const int64_t now = h.clock().NowMs();
  for (const char* session : {"s1", "s2", "s3"}) {
    stream->Write(Action(session, "page_view", "/", now));
  }
  analytics::AnalysisResult result;
  int answered = 0;
  while (stream->Read(&result)) ++answered;
  CHECK(answered <= 2);
  const grpc::Status status = stream->Finish();
  CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(status.error_message(), Catch::Contains("max_sessions"));
}
