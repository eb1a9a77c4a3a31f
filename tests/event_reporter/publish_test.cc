// The PublishEvents delivery (event_reporter's default): per-batch acknowledgements, the window,
// re-sends of only the unacknowledged batches after broken streams (a fake server, and the real
// one behind a proxy that keeps cutting connections), and the interruption: SIGTERM, the drain,
// exit status 3 and --from-line.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "analytics.grpc.pb.h"
#include "event_reporter/cli.h"
#include "event_reporter/reporter.h"
#include "tests/event_reporter/cli_test_util.h"
#include "tests/support/cutting_proxy.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"

using rta::reporter::testing::Answer;
using rta::reporter::testing::CliRun;
using rta::reporter::testing::FileAnswers;
using rta::reporter::testing::GenerateFile;
using rta::reporter::testing::IdLines;
using rta::reporter::testing::ReadFile;
using rta::reporter::testing::Run;
using rta::reporter::testing::RunShell;
using rta::reporter::testing::ShellRun;
using rta::reporter::testing::StartProcess;
using rta::reporter::testing::TempPath;
using rta::reporter::testing::Total;
using rta::reporter::testing::WaitOrKill;
using rta::testing::CuttingProxy;
using rta::testing::FreeLoopbackPort;
using rta::testing::ServerHarness;

namespace {

// PublishEvents as the contract in analytics.proto has it, in memory: per producer the last
// sequence and the counts of its last 8 batches; a re-sent batch is answered duplicate_batch
// with its original counts; a gap ends the stream with FAILED_PRECONDITION; ids seen before
// are duplicates. A test can spoil it: `break_after` N ends every stream with UNAVAILABLE after
// taking N batches (the last one counted but not acknowledged); the first `short_acks` acks
// count one event less; the first `wrong_sequences` acks name the next sequence.
class FakePublishServer final : public analytics::AnalyticsService::Service {
 public:
  struct Script {
    int break_after = 0;
    int short_acks = 0;
    int wrong_sequences = 0;
  };

  explicit FakePublishServer(Script script) : script_(script) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakePublishServer() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    server_->Wait();
    std::lock_guard lock(mutex_);  // the handlers' last writes happen before the members go
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  size_t distinct() {
    std::lock_guard lock(mutex_);
    return seen_.size();
  }
  int streams() {
    std::lock_guard lock(mutex_);
    return streams_;
  }
  uint64_t duplicate_batches() {
    std::lock_guard lock(mutex_);
    return duplicate_batches_;
  }
  std::set<std::string> producers() {
    std::lock_guard lock(mutex_);
    std::set<std::string> names;
    for (const auto& [name, producer] : producers_) names.insert(name);
    return names;
  }

  grpc::Status PublishEvents(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<analytics::PublishAck, analytics::PublishRequest>* stream)
      override {
    {
      std::lock_guard lock(mutex_);
      ++streams_;
    }
    int taken = 0;
    for (analytics::PublishRequest request; stream->Read(&request);) {
      analytics::PublishAck ack;
      {
        std::lock_guard lock(mutex_);
        Producer& producer = producers_[request.producer_id()];
        if (request.sequence() > producer.last + 1) {
          return {grpc::StatusCode::FAILED_PRECONDITION,
                  "sequence gap: expected " + std::to_string(producer.last + 1)};
        }
        if (request.sequence() <= producer.last) {
          ++duplicate_batches_;
          if (auto it = producer.remembered.find(request.sequence());
              it != producer.remembered.end()) {
            ack = it->second;
          } else {
            ack.set_duplicates(request.events_size());
          }
          ack.set_duplicate_batch(true);
        } else {
          for (const analytics::EventData& event : request.events()) {
            if (seen_.insert(event.event_id()).second) {
              ack.set_accepted(ack.accepted() + 1);
            } else {
              ack.set_duplicates(ack.duplicates() + 1);
            }
          }
          ack.set_sequence(request.sequence());
          producer.last = request.sequence();
          producer.remembered[request.sequence()] = ack;
          if (producer.remembered.size() > 8) producer.remembered.erase(producer.remembered.begin());
        }
        ack.set_sequence(request.sequence());
        if (script_.break_after > 0 && ++taken >= script_.break_after) {
          return {grpc::StatusCode::UNAVAILABLE, "injected: stream broken"};
        }
        if (script_.short_acks > 0) {
          --script_.short_acks;
          ack.set_accepted(ack.accepted() - std::min<uint64_t>(ack.accepted(), 1));
        } else if (script_.wrong_sequences > 0) {
          --script_.wrong_sequences;
          ack.set_sequence(ack.sequence() + 1);
        }
      }
      if (!stream->Write(ack)) break;
    }
    return grpc::Status::OK;
  }

 private:
  struct Producer {
    uint64_t last = 0;
    std::map<uint64_t, analytics::PublishAck> remembered;
  };

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mutex_;
  Script script_;                               // guarded by mutex_
  std::map<std::string, Producer> producers_;  // guarded by mutex_
  std::set<std::string> seen_;                  // guarded by mutex_
  int streams_ = 0;                             // guarded by mutex_
  uint64_t duplicate_batches_ = 0;              // guarded by mutex_
};


std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

TEST_CASE("publish: every batch acknowledged, counts exact, one producer per lane",
          "[reporter][publish]") {
  FakePublishServer server({});
  const CliRun run = Run({"replay", "-", "--server", server.address(), "--json", "--streams", "3",
                          "--batch-size", "7", "--window-batches", "2"},
                         IdLines(500));
  INFO(run.err);
  REQUIRE(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["sent"] == 500);
  CHECK(summary["accepted"] == 500);
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["retries"] == 0);
  CHECK(server.distinct() == 500);
  const std::set<std::string> producers = server.producers();
  CHECK(producers.size() <= 3);
  for (const std::string& producer : producers) {
    CHECK_THAT(producer, Catch::Matches("r[0-9a-f]{16}-[0-2]"));
  }
}

TEST_CASE("publish: broken streams re-send only the unacknowledged batches, with their sequences",
          "[reporter][publish][retry]") {
  // Every stream breaks after its 5th batch (counted, not acknowledged): the re-send of that
  // batch is recognised by its sequence and answered with its original counts.
  FakePublishServer::Script script;
  script.break_after = 5;
  FakePublishServer server(script);
  const CliRun run = Run({"replay", "-", "--server", server.address(), "--json", "--streams", "1",
                          "--batch-size", "10", "--window-batches", "3"},
                         IdLines(400));
  INFO(run.err);
  REQUIRE(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["sent"] == 400);
  CHECK(summary["accepted"] == 400);
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["failed"] == 0);
  CHECK(summary["retries"].get<int>() >= 9);
  CHECK(server.duplicate_batches() > 0);
  CHECK(server.distinct() == 400);
  CHECK_THAT(run.err, Catch::Contains("(UNAVAILABLE: injected: stream broken), resending"));
}

TEST_CASE("publish: an ack that does not add up, or names another batch, is a mismatch",
          "[reporter][publish][ack]") {
  FakePublishServer::Script script;
  const bool short_ack = GENERATE(true, false);
  (short_ack ? script.short_acks : script.wrong_sequences) = 1;
  FakePublishServer server(script);
  const CliRun run = Run({"replay", "-", "--server", server.address(), "--json", "--streams", "1",
                          "--batch-size", "5"},
                         IdLines(50));
  INFO(run.err);
  CHECK(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["ack_mismatches"] == 1);
  CHECK(summary["accepted"] == 50);  // the spoiled batch's original counts, on its re-send
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["failed"] == 0);
  CHECK(server.distinct() == 50);
  CHECK_THAT(run.err, Catch::Contains(short_ack ? "the server acknowledged 4 of 5 events of batch 1"
                                                : "the server acknowledged batch 2, expected 1"));
}

TEST_CASE("publish: an ack mismatch every time stops the delivery", "[reporter][publish][ack]") {
  FakePublishServer::Script script;
  script.short_acks = 1'000;
  FakePublishServer server(script);
  const CliRun run =
      Run({"replay", "-", "--server", server.address(), "--json", "--streams", "1"}, IdLines(30));
  CHECK(run.status == 1);
  const auto summary = run.Summary();
  constexpr int kLimit = rta::reporter::Reporter::kMaxConsecutiveMismatches;
  CHECK(summary["ack_mismatches"] == kLimit);
  CHECK(summary["failed"] == 30);
  CHECK_THAT(summary["error"].get<std::string>(),
             Catch::Contains("the server acknowledged 29 of 30 events of batch 1"));
}

TEST_CASE("publish through a proxy that cuts every connection: default flags, exact counts",
          "[reporter][publish][retry]") {
  ServerHarness server;
  CuttingProxy::Options options;
  options.target_port = server.server().grpc_port();
  options.min_bytes = 200 * 1024;
  options.max_bytes = 900 * 1024;
  options.seed = 42;
  CuttingProxy proxy(options);
  const std::string path = GenerateFile("cut.jsonl", 50'000, 17, 100);
  const FileAnswers answers = Answer(path);
  const auto start = std::chrono::steady_clock::now();
  const CliRun run = Run({"replay", path, "--server", proxy.address(), "--json"});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(run.err);
  INFO("cuts: " << proxy.cuts() << ", connections: " << proxy.connections() << ", " << seconds
                << " s");
  REQUIRE(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["accepted"] == answers.events);
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["failed"] == 0);
  CHECK(summary["retries"].get<int>() > 0);
  CHECK(proxy.cuts() >= 5);
  CHECK(seconds < 120);
  CHECK(Total(server, "events_total") == answers.events);
  CHECK(Total(server, "page_views") == answers.page_views);
  CHECK(Total(server, "revenue") == Approx(answers.revenue).epsilon(1e-9));
  std::remove(path.c_str());
}

namespace {

// Runs the binary on `args` in the background, sends it SIGTERM after `delay_s`, and returns
// "STATUS MILLISECONDS" (exit status, and time from the signal to the exit) on out; the
// summary goes to `summary_path`.
ShellRun TerminateAfter(const std::string& args, const std::string& delay_s,
                        const std::string& summary_path) {
  const std::string command = ShellQuote(RTA_EVENT_REPORTER_BINARY) + " " + args + " >" +
                              ShellQuote(summary_path) +
                              " & pid=$!; sleep " + delay_s +
                              "; t0=$(date +%s%3N); kill -TERM $pid; status=0; wait $pid || "
                              "status=$?; t1=$(date +%s%3N); echo \"$status $((t1 - t0))\"";
  return RunShell(command, "", "", std::chrono::seconds(60));
}

nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(ReadFile(path)); }

}  // namespace

TEST_CASE("SIGTERM, server unreachable: exit 3 within --drain-ms, then --from-line resumes",
          "[reporter][publish][interrupt]") {
  const std::string path = GenerateFile("sigterm.jsonl", 3'000, 21, 50);
  const FileAnswers answers = Answer(path);
  const std::string summary_path = TempPath("sigterm_summary.json");
  const std::string address = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  const ShellRun shell = TerminateAfter(
      "replay " + ShellQuote(path) + " --server " + address + " --drain-ms 1000 --json", "1",
      summary_path);
  INFO(shell.out << shell.err);
  int status = -1, elapsed_ms = -1;
  REQUIRE(std::sscanf(shell.out.c_str(), "%d %d", &status, &elapsed_ms) == 2);
  CHECK(status == rta::reporter::kExitInterrupted);
  CHECK(elapsed_ms <= 1'000 + 2'000);
  CHECK_THAT(shell.err, Catch::Contains("server unreachable"));
  CHECK_THAT(shell.err, Catch::Contains("interrupted: 0 events acknowledged") &&
                            Catch::Contains("first line not acknowledged: 1; resume with "
                                            "--from-line 1"));
  const nlohmann::json before = ReadJson(summary_path);
  CHECK(before["interrupted"] == true);
  CHECK(before["acknowledged"] == 0);
  CHECK(before["first_unacknowledged_line"] == 1);
  REQUIRE(before["resume_flag"] == "--from-line 1");

  ServerHarness server;
  const CliRun resumed =
      Run({"replay", path, "--server", server.address(), "--json", "--from-line", "1"});
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
  CHECK(before["acknowledged"].get<uint64_t>() + resumed.Summary()["accepted"].get<uint64_t>() ==
        answers.events);
  CHECK(Total(server, "events_total") == answers.events);
  std::remove(summary_path.c_str());
  std::remove(path.c_str());
}

TEST_CASE("SIGTERM mid-way against a live server: what was read is acknowledged, and the "
          "resume from the named line completes the file exactly",
          "[reporter][publish][interrupt]") {
  ServerHarness server;
  const std::string path = GenerateFile("midway.jsonl", 6'000, 23, 50);
  const FileAnswers answers = Answer(path);
  const std::string summary_path = TempPath("midway_summary.json");
  const std::string err_path = TempPath("midway.err");
  const int pid = StartProcess({RTA_EVENT_REPORTER_BINARY, "replay", path, "--server",
                                server.address(), "--rate", "2000", "--json"},
                               summary_path, err_path);
  REQUIRE(pid > 0);
  // The signal goes once the server has counted part of the file, not after a fixed delay: a
  // sanitized build on a loaded machine can take longer than any fixed delay to connect
  // (a CI run signalled it after 1 s with nothing acknowledged yet).
  double counted = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((counted = Total(server, "events_total")) == 0 &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto signalled = std::chrono::steady_clock::now();
  kill(pid, SIGTERM);
  const int status = WaitOrKill(pid, std::chrono::seconds(60));
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - signalled)
                              .count();
  INFO("counted before the signal: " << counted << "; stderr: " << ReadFile(err_path));
  REQUIRE(counted > 0);
  REQUIRE(counted < answers.events);
  CHECK(status == rta::reporter::kExitInterrupted);
  CHECK(elapsed_ms <= 5'000 + 2'000);
  const nlohmann::json before = ReadJson(summary_path);
  INFO(before.dump());
  const uint64_t acknowledged = before["acknowledged"];
  const uint64_t line = before["first_unacknowledged_line"];
  CHECK(acknowledged > 0);
  CHECK(acknowledged < answers.events);
  CHECK(before["unacknowledged"] == 0);
  // Every line before the named one was acknowledged (the file has no blank or bad lines).
  CHECK(line == acknowledged + 1);
  CHECK(before["resume_flag"] == "--from-line " + std::to_string(line));

  const CliRun resumed = Run(
      {"replay", path, "--server", server.address(), "--json", "--from-line", std::to_string(line)});
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
  CHECK(acknowledged + resumed.Summary()["accepted"].get<uint64_t>() == answers.events);
  CHECK(resumed.Summary()["duplicates"] == 0);
  CHECK(Total(server, "events_total") == answers.events);
  std::remove(summary_path.c_str());
  std::remove(err_path.c_str());
  std::remove(path.c_str());
}
