// replay mode against the real server on loopback: exact counts, bad lines, strict mode.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <ios>
#include <nlohmann/json.hpp>
#include <streambuf>

#include "tests/event_reporter/cli_test_util.h"
#include "tests/support/server_harness.h"
#include "tests/support/sketch_bounds.h"

using rta::reporter::testing::Answer;
using rta::reporter::testing::CliRun;
using rta::reporter::testing::FileAnswers;
using rta::reporter::testing::GenerateFile;
using rta::reporter::testing::Run;
using rta::reporter::testing::Total;
using rta::testing::HyperLogLogBound;
using rta::testing::ServerHarness;

TEST_CASE("replay of generated traffic: the server's counts equal the file's exact answers",
          "[reporter][replay]") {
  ServerHarness server;
  const std::string path = GenerateFile("replay.jsonl", 6'000, 7);
  const FileAnswers answers = Answer(path);
  SECTION("batched") {
    const CliRun run = Run({"replay", path, "--server", server.address(), "--json"});
    INFO(run.err);
    REQUIRE(run.status == 0);
    const auto summary = run.Summary();
    CHECK(summary["sent"] == answers.events);
    CHECK(summary["accepted"] == answers.events);
    CHECK(summary["rejected"] == 0);
  }
  SECTION("one event per message") {
    const CliRun run = Run({"replay", path, "--server", server.address(), "--no-batch", "--json"});
    INFO(run.err);
    REQUIRE(run.status == 0);
    CHECK(run.Summary()["accepted"] == answers.events);
  }
  CHECK(Total(server, "events_total") == answers.events);
  CHECK(Total(server, "page_views") == answers.page_views);
  CHECK(Total(server, "conversions") == answers.conversions);
  CHECK(Total(server, "revenue") == Approx(answers.revenue).epsilon(1e-9));
  CHECK(Total(server, "unique_visitors") ==
        Approx(static_cast<double>(answers.visitors.size())).epsilon(HyperLogLogBound(14)));
  std::remove(path.c_str());
}

TEST_CASE("bad lines are reported by number and the rest still go in", "[reporter][replay]") {
  ServerHarness server;
  const int64_t now = rta::testing::NowMs();
  const std::string input =
      R"({"event_id":"a","event_type":"page_view","visitor_id":"v1"})"
      "\n"
      R"({"event_id":"b","event_type": page_view})"
      "\n\n"  // blank lines are skipped, but counted
      R"({"event_id":"c","event_type":"click","vistor":"v1"})"
      "\n" +
      nlohmann::json{{"event_id", "d"}, {"event_type", "click"}, {"timestamp_ms", now - 7'200'000}}
          .dump() +
      "\n"
      R"({"event_id":"e","event_type":"purchase","value":20})"
      "\n";
  SECTION("lenient") {
    const CliRun run = Run({"replay", "-", "--server", server.address(), "--json"}, input);
    CHECK(run.status == 1);
    CHECK_THAT(run.err, Catch::Contains("line 2: invalid JSON at column"));
    CHECK_THAT(run.err, Catch::Contains("line 4: unknown field \"vistor\""));
    // The server's refusal is mapped back to the input line.
    CHECK_THAT(run.err, Catch::Contains("rejected: line 5 (id d): timestamp_ms:"));
    const auto summary = run.Summary();
    CHECK(summary["invalid_lines"] == 2);
    CHECK(summary["accepted"] == 2);
    CHECK(summary["rejected"] == 1);
    CHECK(Total(server, "events_total") == 2);
    CHECK(Total(server, "revenue") == 20);
  }
  SECTION("strict stops at the first bad line") {
    const CliRun run =
        Run({"replay", "-", "--server", server.address(), "--json", "--strict"}, input);
    CHECK(run.status == 1);
    CHECK_THAT(run.err, Catch::Contains("--strict: stopped at line 2"));
    CHECK_THAT(run.err, !Catch::Contains("line 4"));
    CHECK(run.Summary()["accepted"] == 1);
    CHECK(Total(server, "events_total") == 1);
  }
}

namespace {

// A stdin that gives `text` and then fails, as a read that meets an I/O error does: the stream
// turns the exception into badbit.
class FailingAfter : public std::streambuf {
 public:
  explicit FailingAfter(std::string text) : text_(std::move(text)) {
    setg(text_.data(), text_.data(), text_.data() + text_.size());
  }

 protected:
  int_type underflow() override { throw std::ios_base::failure("injected read error"); }

 private:
  std::string text_;
};

}  // namespace

TEST_CASE("an input that cannot be read is an error and not an empty or short replay",
          "[reporter][replay]") {
  ServerHarness server;
  SECTION("a directory") {
    const std::string directory = std::filesystem::temp_directory_path().string();
    const CliRun run = Run({"replay", directory, "--server", server.address()});
    CHECK(run.status == 2);
    CHECK_THAT(run.err, Catch::Contains("cannot read " + directory + ": is a directory"));
    CHECK(Total(server, "events_total") == 0);
  }
  SECTION("a read error after two lines: those are delivered, and the run fails") {
    FailingAfter buffer(R"({"event_id":"a","event_type":"page_view","visitor_id":"v1"})"
                        "\n"
                        R"({"event_id":"b","event_type":"page_view","visitor_id":"v2"})"
                        "\n");
    std::istream in(&buffer);
    const CliRun run = Run({"replay", "-", "--server", server.address(), "--json"}, in);
    CHECK(run.status == 1);
    CHECK_THAT(run.err, Catch::Contains("cannot read stdin after line 2: a read error"));
    const auto summary = run.Summary();
    CHECK(summary["accepted"] == 2);
    CHECK_THAT(summary["error"].get<std::string>(), Catch::Contains("a read error"));
    CHECK(Total(server, "events_total") == 2);
  }
}
