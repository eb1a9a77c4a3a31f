// Issue 10's bounds as the running server applies them: the server-wide AnalyzeSession budget
// across streams (with its status, message and metrics), and the validation of each new flag.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "server/config_parser.h"
#include "tests/support/server_harness.h"

namespace {

using rta::testing::ServerHarness;

analytics::UserAction Click(const std::string& session, int64_t time_ms) {
  analytics::UserAction action;
  action.set_session_id(session);
  action.set_action_type("click");
  action.set_target("#buy");
  action.set_timestamp_ms(time_ms);
  return action;
}

double Scrape(ServerHarness& h, const std::string& series) {
  return rta::testing::PrometheusValue(rta::testing::HttpGet(h.server().metrics_port(), "/metrics"),
                                       series);
}

}  // namespace

TEST_CASE("AnalyzeSession: a server-wide session budget across streams, then RESOURCE_EXHAUSTED",
          "[server][integration][analyze][limits]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_analyze_sessions = 3;
  config.max_sessions_per_analyze_stream = 10;  // the per-stream limit is not what stops them
  ServerHarness h(config);
  auto stub = h.NewStub();
  const int64_t now = h.clock().NowMs();
  auto deadline = [] {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return context;
  };

  // Stream 1 holds two sessions, open.
  auto context_1 = deadline();
  auto stream_1 = stub->AnalyzeSession(context_1.get());
  analytics::AnalysisResult result;
  for (const char* session : {"a1", "a2"}) {
    REQUIRE(stream_1->Write(Click(session, now)));
    REQUIRE(stream_1->Read(&result));
    CHECK(result.session_id() == session);
  }
  // Stream 2 gets the third; the fourth session of the server ends it.
  auto context_2 = deadline();
  auto stream_2 = stub->AnalyzeSession(context_2.get());
  REQUIRE(stream_2->Write(Click("b1", now)));
  REQUIRE(stream_2->Read(&result));
  CHECK(result.session_id() == "b1");
  REQUIRE(rta::testing::WaitFor([&] { return Scrape(h, "analytics_analyze_sessions") == 3; }));
  (void)stream_2->Write(Click("b2", now));
  while (stream_2->Read(&result)) {
  }
  const grpc::Status status = stream_2->Finish();
  CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(status.error_message(), Catch::Contains("max_analyze_sessions (3)"));

  // Stream 2's session is given back when it ends; stream 1 goes on and may start one more.
  CHECK(rta::testing::WaitFor([&] { return Scrape(h, "analytics_analyze_sessions") == 2; }));
  CHECK(Scrape(h, "analytics_analyze_sessions_refused_total") == 1);
  REQUIRE(stream_1->Write(Click("a3", now)));
  REQUIRE(stream_1->Read(&result));
  CHECK(result.session_id() == "a3");
  CHECK(result.error().empty());
  stream_1->WritesDone();
  while (stream_1->Read(&result)) {
  }
  CHECK(stream_1->Finish().ok());
  CHECK(rta::testing::WaitFor([&] { return Scrape(h, "analytics_analyze_sessions") == 0; }));
}

TEST_CASE("the new bounds are flags with defaults and refused beyond their range",
          "[server][config][limits]") {
  using rta::server::CommandLine;
  using rta::server::ParseCommandLine;
  {
    CommandLine cl;
    std::string error;
    REQUIRE(ParseCommandLine({}, &cl, &error));
    CHECK(cl.config.aggregator.max_dimension_value_bytes == 256);
    CHECK(cl.config.aggregator.key_dictionary_max_bytes == 32u << 20);
    CHECK(cl.config.max_analyze_sessions == 100'000);
  }
  {
    CommandLine cl;
    std::string error;
    REQUIRE(ParseCommandLine({"--max-dimension-value-bytes", "64", "--key-dictionary-max-bytes",
                              "2097152", "--max-analyze-sessions", "7"},
                             &cl, &error));
    CHECK(cl.config.aggregator.max_dimension_value_bytes == 64);
    CHECK(cl.config.aggregator.key_dictionary_max_bytes == 2u << 20);
    CHECK(cl.config.max_analyze_sessions == 7);
  }
  const std::vector<std::pair<std::vector<std::string>, std::string>> refused = {
      {{"--max-dimension-value-bytes", "8"}, "max_dimension_value_bytes"},
      {{"--max-dimension-value-bytes", "4096"}, "max_dimension_value_bytes"},
      {{"--key-dictionary-max-bytes", "1000"}, "key_dictionary_max_bytes"},
      {{"--key-dictionary-max-bytes", "2147483648"}, "key_dictionary_max_bytes"},
      {{"--max-analyze-sessions", "0"}, "max_analyze_sessions"},
      {{"--max-analyze-sessions", "10000001"}, "max_analyze_sessions"},
      {{"--max-analyze-sessions", "4294967296"}, "--max-analyze-sessions"},
  };
  for (const auto& [args, key] : refused) {
    CommandLine cl;
    std::string error;
    INFO(args[0] << " " << args[1]);
    CHECK_FALSE(ParseCommandLine(args, &cl, &error));
    CHECK_THAT(error, Catch::Contains(key));
  }
}

TEST_CASE("--help states the de-duplication capacity", "[server][config][limits]") {
  const std::string help = rta::server::ServerHelpText();
  CHECK_THAT(help, Catch::Contains("3145728 event ids per --dedupe-horizon-seconds"));
  CHECK_THAT(help, Catch::Contains("--max-analyze-sessions"));
  CHECK_THAT(help, Catch::Contains("--max-dimension-value-bytes"));
  CHECK_THAT(help, Catch::Contains("--key-dictionary-max-bytes"));
}
