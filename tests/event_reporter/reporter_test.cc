// Reporter: retries over broken streams, a server that comes up late, an unreachable one,
// refusals that retrying cannot fix, acknowledgements that do not add up (against a fake
// ReportEventBatches / ReportEvent server: --protocol batches; publish_test.cc has the same for
// PublishEvents), load balancing over two servers.
#include "event_reporter/reporter.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "analytics.grpc.pb.h"
#include "tests/event_reporter/cli_test_util.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"

using rta::reporter::testing::Answer;
using rta::reporter::testing::CliRun;
using rta::reporter::testing::FileAnswers;
using rta::reporter::testing::GenerateFile;
using rta::reporter::testing::IdLines;
using rta::reporter::testing::Run;
using rta::reporter::testing::Total;
using rta::testing::FreeLoopbackPort;
using rta::testing::ServerHarness;

namespace {

// A stand-in for the server's ingest that counts distinct event ids as the real one does
// (seen before: a duplicate), but whose answers a test can spoil: the first `short_answers`
// streams that carry events are told one event less than was counted, the first
// `over_answers` one more; with a `refusal`, every stream ends with that status instead; with
// `unparseable_message` N, every stream ends at its message #N (0-based) as analytics_server
// ends one it cannot parse: INVALID_ARGUMENT naming the position, the events before it
// counted and their counts in the trailer rta-event-response-bin.
class FakeIngestServer final : public analytics::AnalyticsService::Service {
 public:
  struct Script {
    int short_answers = 0;
    int over_answers = 0;
    grpc::Status refusal = grpc::Status::OK;
    // With `refusal`: the trailer rta-event-response-bin claims this many events accepted
    // (-1: no trailer).
    int refusal_counted = -1;
    int unparseable_message = -1;
  };

  explicit FakeIngestServer(Script script) : script_(std::move(script)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeIngestServer() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    // Shutdown returns once every handler has; the lock shows TSan (which does not see inside
    // gRPC) that their reads of script_ came before the members go.
    std::lock_guard lock(mutex_);
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

  grpc::Status ReportEventBatches(grpc::ServerContext* context,
                                  grpc::ServerReader<analytics::EventBatch>* reader,
                                  analytics::EventResponse* response) override {
    std::vector<std::string> ids;
    int messages = 0;
    for (analytics::EventBatch batch; reader->Read(&batch); ++messages) {
      if (messages == script_.unparseable_message) return Unparseable(messages, ids, context);
      for (const analytics::EventData& event : batch.events()) ids.push_back(event.event_id());
    }
    if (!script_.refusal.ok()) return Refusal(context);
    return Answer(ids, response);
  }

  grpc::Status ReportEvent(grpc::ServerContext* context,
                           grpc::ServerReader<analytics::EventData>* reader,
                           analytics::EventResponse* response) override {
    std::vector<std::string> ids;
    int messages = 0;
    for (analytics::EventData event; reader->Read(&event); ++messages) {
      if (messages == script_.unparseable_message) return Unparseable(messages, ids, context);
      ids.push_back(event.event_id());
    }
    if (!script_.refusal.ok()) return Refusal(context);
    return Answer(ids, response);
  }

 private:
  grpc::Status Refusal(grpc::ServerContext* context) {
    std::lock_guard lock(mutex_);
    ++streams_;
    if (script_.refusal_counted >= 0) {
      analytics::EventResponse counted;
      counted.set_accepted(static_cast<uint64_t>(script_.refusal_counted));
      context->AddTrailingMetadata("rta-event-response-bin", counted.SerializeAsString());
    }
    return script_.refusal;
  }

  grpc::Status Unparseable(int position, const std::vector<std::string>& before,
                           grpc::ServerContext* context) {
    analytics::EventResponse counted;
    Answer(before, &counted);
    context->AddTrailingMetadata("rta-event-response-bin", counted.SerializeAsString());
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "message #" + std::to_string(position) +
                " is not a valid EventData: field 'page': not valid UTF-8"};
  }

  grpc::Status Answer(const std::vector<std::string>& ids, analytics::EventResponse* response) {
    std::lock_guard lock(mutex_);
    ++streams_;
    if (!script_.refusal.ok()) return script_.refusal;
    for (const std::string& id : ids) {
      if (seen_.insert(id).second) {
        response->set_accepted(response->accepted() + 1);
      } else {
        response->set_duplicates(response->duplicates() + 1);
      }
    }
    if (ids.empty()) return grpc::Status::OK;
    if (script_.short_answers > 0) {
      --script_.short_answers;
      // One event fewer, taken from whichever count has one.
      if (response->accepted() > 0) {
        response->set_accepted(response->accepted() - 1);
      } else {
        response->set_duplicates(response->duplicates() - 1);
      }
    } else if (script_.over_answers > 0) {
      --script_.over_answers;
      response->set_accepted(response->accepted() + 1);
    }
    return grpc::Status::OK;
  }

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mutex_;
  Script script_;               // guarded by mutex_
  std::set<std::string> seen_;  // guarded by mutex_
  int streams_ = 0;             // guarded by mutex_
};


}  // namespace

TEST_CASE("streams broken mid-way are re-sent: nothing lost, nothing counted twice",
          "[reporter][retry]") {
  // Every third stream fails after its first message is counted.
  ServerHarness server(ServerHarness::DefaultConfig(),
                       ServerHarness::FailEveryNthStreamAfterFirstMessage(3));
  const std::string path = GenerateFile("retry.jsonl", 5'000, 11);
  const FileAnswers answers = Answer(path);
  // ReportEventBatches, ReportEvent (the stream's events are re-sent and come back as
  // duplicates).
  const bool batched = GENERATE(true, false);
  std::vector<std::string> args = {"replay",       path,  "--server",        server.address(),
                                   "--json",       "--protocol", "batches", "--stream-events",
                                   "400",          "--batch-size", "100"};
  if (!batched) args.push_back("--no-batch");
  const CliRun run = Run(args);
  INFO(run.err);
  REQUIRE(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["retries"] > 0);
  CHECK(summary["failed"] == 0);
  // The events of a broken stream were counted but never acknowledged; resent, they come back
  // as duplicates. Together: every event exactly once.
  CHECK(summary["accepted"].get<uint64_t>() + summary["duplicates"].get<uint64_t>() ==
        answers.events);
  CHECK(summary["duplicates"].get<uint64_t>() > 0);
  CHECK_THAT(run.err, Catch::Contains("(UNAVAILABLE: injected stream failure (test only)), "
                                      "resending"));
  CHECK(Total(server, "events_total") == answers.events);
  CHECK(Total(server, "page_views") == answers.page_views);
  CHECK(Total(server, "revenue") == Approx(answers.revenue).epsilon(1e-9));
  std::remove(path.c_str());
}

TEST_CASE("a server that comes up late gets every event once", "[reporter][retry]") {
  const int port = FreeLoopbackPort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const std::string path = GenerateFile("late.jsonl", 2'000, 5);
  // The reporter starts against a closed port and retries; the server then starts there.
  auto reporter = std::async(std::launch::async, [&] {
    return Run({"replay", path, "--server", address, "--json", "--give-up-after", "60"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // a few failed attempts
  auto config = ServerHarness::DefaultConfig();
  config.listen = address;
  ServerHarness server(config);
  REQUIRE(reporter.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  const CliRun run = reporter.get();
  INFO(run.err);
  CHECK(run.status == 0);
  CHECK_THAT(run.err,
             Catch::Contains("server unreachable at " + address + " (UNAVAILABLE), retrying in"));
  CHECK(run.Summary()["retries"] > 0);
  CHECK(Total(server, "events_total") == 2'000);
  std::remove(path.c_str());
}

TEST_CASE("an unreachable server: clear retries, then it gives up and says so",
          "[reporter][retry]") {
  const std::string address = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  const CliRun run =
      Run({"send", "--type", "page_view", "--server", address, "--json", "--give-up-after", "1"});
  CHECK(run.status == 1);
  CHECK_THAT(run.err,
             Catch::Contains("server unreachable at " + address + " (UNAVAILABLE), retrying in"));
  CHECK_THAT(run.err, Catch::Contains("gave up after"));
  CHECK(run.Summary()["failed"] == 1);
}

TEST_CASE("a refusal that retrying cannot fix stops the delivery", "[reporter][retry]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_batch_events = 10;
  ServerHarness server(config);
  const std::string path = GenerateFile("refused.jsonl", 100, 3);
  const std::string protocol = GENERATE("publish", "batches");
  const CliRun run = Run({"replay", path, "--server", server.address(), "--json", "--batch-size",
                          "50", "--protocol", protocol});
  INFO(run.err);
  INFO(run.out);
  CHECK(run.status == 1);
  // A lane's batches hold the events of its sessions (each session goes to one lane): up to 50
  // of the 100, whichever lane the server answers first. A batch is usually the first of its
  // lane; one that the linger closed early (a slow read of the file) holds at most 10 events
  // and is accepted, and the refused one comes after it.
  CHECK_THAT(run.err, Catch::Contains("the server refused the events (INVALID_ARGUMENT: events: "
                                      "batch ") &&
                          Catch::Contains(" events, limit 10)"));
  const auto summary = run.Summary();
  // Every line is accounted for once: accepted (a batch within the limit), failed once
  // delivered, or never sent after the stop (how many lines were read before the refusal
  // arrived depends on timing).
  const uint64_t not_sent = summary.value("not_sent", uint64_t{0});
  CHECK(summary["accepted"].get<uint64_t>() + summary["failed"].get<uint64_t>() + not_sent == 100);
  CHECK(summary["accepted"].get<uint64_t>() == Total(server, "events_total"));
  CHECK(summary["failed"].get<uint64_t>() >= 1);
  CHECK(summary["retries"] == 0);
  std::remove(path.c_str());
}

TEST_CASE("a refusal after an accepted batch: every line is accepted, failed or not sent once",
          "[reporter][retry]") {
  // The input is a named pipe that gives the first line alone and the other 99 a second later,
  // long after the linger (200 ms here): the lane's first batch holds one event, which the
  // server accepts, and its next one the 50 that the linger gathers, which it refuses (at most
  // 10 per batch).
  auto config = ServerHarness::DefaultConfig();
  config.max_batch_events = 10;
  ServerHarness server(config);
  const std::string path = GenerateFile("refused_late.jsonl", 100, 4);
  std::vector<std::string> lines;
  {
    std::ifstream file(path);
    for (std::string line; std::getline(file, line);) lines.push_back(line);
  }
  REQUIRE(lines.size() == 100);
  const std::string protocol = GENERATE("publish", "batches");
  const std::string fifo = path + ".fifo";
  std::remove(fifo.c_str());
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::thread writer([&] {
    // A reader that ends early makes write() fail with EPIPE here instead of a SIGPIPE.
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    const int fd = ::open(fifo.c_str(), O_WRONLY);  // waits for the replay to open it
    if (fd < 0) return;
    auto write_lines = [fd](const std::vector<std::string>& from, size_t begin, size_t end) {
      std::string text;
      for (size_t i = begin; i < end; ++i) text += from[i] + "\n";
      for (size_t at = 0; at < text.size();) {
        const ssize_t n = ::write(fd, text.data() + at, text.size() - at);
        if (n <= 0) return;
        at += static_cast<size_t>(n);
      }
    };
    write_lines(lines, 0, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    write_lines(lines, 1, lines.size());
    ::close(fd);
  });
  const CliRun run = Run({"replay", fifo, "--server", server.address(), "--json", "--batch-size",
                          "50", "--linger-ms", "200", "--streams", "1", "--protocol", protocol});
  // Releases the writer if the replay never opened the pipe (then the checks below fail).
  if (const int fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK); fd >= 0) ::close(fd);
  writer.join();
  INFO(run.err);
  INFO(run.out);
  CHECK(run.status == 1);
  CHECK_THAT(run.err, Catch::Contains(protocol == "batches"
                                          ? "(INVALID_ARGUMENT: events: batch #1 has 50 events, "
                                            "limit 10)"
                                          : "(INVALID_ARGUMENT: events: batch sequence 2 has 50 "
                                            "events, limit 10)"));
  if (protocol == "batches") {
    // Its stream ended with the refusal; the trailer said what it had counted before.
    CHECK_THAT(run.err, Catch::Contains("(the server counted the stream's first event; the rest "
                                        "carried input lines 2-100)"));
  }
  const auto summary = run.Summary();
  CHECK(summary["accepted"] == 1);
  CHECK(Total(server, "events_total") == 1);
  const uint64_t not_sent = summary.value("not_sent", uint64_t{0});
  CHECK(summary["failed"].get<uint64_t>() >= 50);
  CHECK(summary["failed"].get<uint64_t>() + not_sent == 99);
  CHECK(summary["duplicates"] == 0);
  CHECK(summary["rejected"] == 0);
  std::remove(fifo.c_str());
  std::remove(path.c_str());
}

namespace {

// A replay of `input` ("-": stdin) to a server that takes messages of at most 20,000 bytes,
// over `protocol`: "publish", "batches" or "events" (ReportEvent, --no-batch: one event a
// message).
std::vector<std::string> SmallMessagesReplay(const std::string& input, const std::string& address,
                                             const std::string& protocol) {
  std::vector<std::string> args = {
      "replay", input,        "--server",
      address,  "--json",     "--give-up-after",
      "60",     "--protocol", protocol == "publish" ? "publish" : "batches"};
  if (protocol == "events") args.push_back("--no-batch");
  return args;
}

rta::server::ServerConfig SmallMessagesConfig() {
  auto config = ServerHarness::DefaultConfig();
  config.max_message_bytes = 20'000;
  return config;
}

}  // namespace

TEST_CASE("a server that takes smaller messages than --batch-bytes: batches shrink to fit it",
          "[reporter][retry]") {
  // A batch of 500 generated events (--batch-size) is about 60 KB; the server takes 20,000
  // bytes a message. gRPC refuses the larger messages (RESOURCE_EXHAUSTED, "Received message
  // larger than max"), which retrying as they are would never fix. The long linger fills the
  // first batches however slowly the file is read (under TSan a 20 ms linger closed them
  // before they reached 20,000 bytes).
  ServerHarness server(SmallMessagesConfig());
  const std::string path = GenerateFile("small_messages.jsonl", 2'000, 5);
  const std::string protocol = GENERATE("publish", "batches", "events");  // events: all fit
  std::vector<std::string> args = SmallMessagesReplay(path, server.address(), protocol);
  args.insert(args.end(), {"--linger-ms", "1000"});
  const CliRun run = Run(args);
  INFO(run.err);
  INFO(run.out);
  REQUIRE(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["accepted"] == 2'000);
  CHECK(summary["failed"] == 0);
  CHECK(summary["duplicates"] == 0);
  CHECK(Total(server, "events_total") == 2'000);
  if (protocol == "events") {
    CHECK(summary["retries"] == 0);
  } else {
    CHECK(summary["retries"].get<uint64_t>() >= 1);
    CHECK_THAT(run.err, Catch::Contains("the server takes messages of at most 20000 bytes (its "
                                        "--max-message-bytes), less than --batch-bytes 524288: "
                                        "batches are now at most 17500 bytes"));
    // Said once, however many lanes met the limit.
    CHECK(run.err.find("the server takes messages") == run.err.rfind("the server takes messages"));
  }
  std::remove(path.c_str());
}

TEST_CASE("an event larger than the server's messages fails alone, named by its line",
          "[reporter][retry]") {
  ServerHarness server(SmallMessagesConfig());
  const std::string protocol = GENERATE("publish", "batches", "events");
  // Lines 1 and 3 are small; line 2 alone is a 30 KB message.
  std::string input = IdLines(1);
  input += nlohmann::json{{"event_id", "big"},
                          {"event_type", "page_view"},
                          {"page", "/" + std::string(30'000, 'a')}}
               .dump() +
           "\n";
  input += nlohmann::json{{"event_id", "after"}, {"event_type", "page_view"}}.dump() + "\n";
  std::vector<std::string> args = SmallMessagesReplay("-", server.address(), protocol);
  args.insert(args.end(), {"--streams", "1"});
  const CliRun run = Run(args, input);
  INFO(run.err);
  INFO(run.out);
  CHECK(run.status == 1);  // something failed
  CHECK_THAT(run.err, Catch::Contains("not sent: the event on input line 2 is ") &&
                          Catch::Contains(" bytes in a message of its own, over the server's "
                                          "limit of 20000 bytes (its --max-message-bytes)"));
  const auto summary = run.Summary();
  CHECK(summary["failed"] == 1);
  // The other two are counted once (a resend after the refusal finds them counted already).
  CHECK(summary["accepted"].get<uint64_t>() + summary["duplicates"].get<uint64_t>() == 2);
  CHECK(Total(server, "events_total") == 2);
  CHECK(!summary.contains("error"));  // the delivery went on
}

TEST_CASE("several servers: streams are balanced and the sum of their counts is exact",
          "[reporter][balance]") {
  ServerHarness first, second;
  const std::string path = GenerateFile("balance.jsonl", 4'000, 9);
  const CliRun run = Run({"replay", path, "--server", first.address() + "," + second.address(),
                          "--streams", "4", "--stream-events", "200", "--json", "--protocol",
                          "batches"});  // publish streams are long-lived: balanced per stream
  INFO(run.err);
  REQUIRE(run.status == 0);
  const double a = Total(first, "events_total");
  const double b = Total(second, "events_total");
  CHECK(a + b == 4'000);
  CHECK(a > 0);
  CHECK(b > 0);
  std::remove(path.c_str());
}

TEST_CASE("an acknowledgement that does not add up is retried, and the totals come out exact",
          "[reporter][ack]") {
  FakeIngestServer::Script script;
  const bool short_answer = GENERATE(true, false);
  (short_answer ? script.short_answers : script.over_answers) = 1;
  FakeIngestServer server(script);
  const bool batched = GENERATE(true, false);
  // One stream at a time, 20 events per stream: streams of 20, 20 and 10 events, in order. The
  // first one's answer is spoiled.
  std::vector<std::string> args = {"replay",   "-",
                                   "--server", server.address(),
                                   "--json",   "--streams",
                                   "1",        "--stream-events",
                                   "20",       "--batch-size",
                                   "5",        "--protocol",
                                   "batches"};
  if (!batched) args.push_back("--no-batch");
  const CliRun run = Run(args, IdLines(50));
  INFO(run.err);
  CHECK(run.status == 0);
  const auto summary = run.Summary();
  CHECK(summary["sent"] == 50);
  CHECK(summary["ack_mismatches"] == 1);
  CHECK(summary["retries"] == 1);
  CHECK(summary["failed"] == 0);
  // The spoiled stream's 20 events were counted the first time; resent, they are duplicates.
  CHECK(summary["accepted"] == 30);
  CHECK(summary["duplicates"] == 20);
  CHECK(server.distinct() == 50);
  CHECK(server.streams() == 4);
  CHECK_THAT(run.err, Catch::Contains(short_answer ? "the server acknowledged 19 of 20 events "
                                                     "(19 accepted, 0 duplicates, 0 rejected)"
                                                   : "the server acknowledged 21 of 20 events "
                                                     "(21 accepted, 0 duplicates, 0 rejected)"));
  CHECK_THAT(run.err, Catch::Contains("resending its 20 events in"));
}

TEST_CASE("a server whose counts never add up: the delivery stops and says why",
          "[reporter][ack]") {
  FakeIngestServer::Script script;
  script.short_answers = 1'000;
  FakeIngestServer server(script);
  const CliRun run =
      Run({"replay", "-", "--server", server.address(), "--json", "--streams", "1", "--protocol",
           "batches"},
          IdLines(30));
  INFO(run.err);
  CHECK(run.status == 1);
  const auto summary = run.Summary();
  constexpr int kLimit = rta::reporter::Reporter::kMaxConsecutiveMismatches;
  CHECK(summary["ack_mismatches"] == kLimit);
  CHECK(summary["retries"] == kLimit - 1);
  CHECK(summary["failed"] == 30);
  CHECK(server.streams() == kLimit);
  CHECK_THAT(summary["error"].get<std::string>(),
             Catch::Contains("the server acknowledged 29 of 30 events") &&
                 Catch::Contains(std::to_string(kLimit) + " times in a row for the same events"));
}

TEST_CASE("INVALID_ARGUMENT ends the delivery with the server's own message", "[reporter][retry]") {
  const bool batched = GENERATE(true, false);
  std::vector<std::string> args = {"replay",    "-", "--server",     "", "--json",
                                   "--streams", "1", "--batch-size", "5", "--protocol", "batches"};
  if (!batched) args.push_back("--no-batch");
  SECTION("as analytics_server refuses a message it cannot parse: what came before counts") {
    // Message #2 is the third batch of five (lines 11-15), or the third event (line 3).
    FakeIngestServer::Script script;
    script.unparseable_message = 2;
    FakeIngestServer server(script);
    args[3] = server.address();
    const CliRun run = Run(args, IdLines(20));
    CHECK(run.status == 1);
    const std::string expected =
        "the server refused the events (INVALID_ARGUMENT: message #2 is not a valid EventData: "
        "field 'page': not valid UTF-8); retrying cannot fix this (message #2 carried " +
        std::string(batched ? "input lines 11-15; the 10 events" : "input line 3; the 2 events") +
        " before it were counted)";
    CHECK_THAT(run.err, Catch::Contains(expected));
    const auto summary = run.Summary();
    CHECK(summary["error"] == expected);
    CHECK(summary["accepted"] == (batched ? 10 : 2));
    CHECK(summary["failed"] == (batched ? 10 : 18));
    CHECK(summary["retries"] == 0);
    CHECK(server.distinct() == (batched ? 10u : 2u));
  }
  SECTION("a refusal that names no message: the whole stream fails") {
    FakeIngestServer::Script script;
    script.refusal = {grpc::StatusCode::INVALID_ARGUMENT, "events: batch has too many events"};
    FakeIngestServer server(script);
    args[3] = server.address();
    const CliRun run = Run(args, IdLines(20));
    CHECK(run.status == 1);
    const std::string expected =
        "the server refused the events (INVALID_ARGUMENT: events: batch has too many events); "
        "retrying cannot fix this (that stream carried input lines 1-20)";
    CHECK_THAT(run.err, Catch::Contains(expected));
    const auto summary = run.Summary();
    CHECK(summary["error"] == expected);
    CHECK(summary["accepted"] == 0);
    CHECK(summary["failed"] == 20);
    CHECK(summary["retries"] == 0);
    CHECK(summary["ack_mismatches"] == 0);
    CHECK(server.streams() == 1);
  }
  SECTION("a refusal whose trailer counts the first two batches: they count, the rest fails") {
    FakeIngestServer::Script script;
    script.refusal = {grpc::StatusCode::INVALID_ARGUMENT, "events: batch #2 has too many events"};
    script.refusal_counted = 10;
    FakeIngestServer server(script);
    args[3] = server.address();
    const CliRun run = Run(args, IdLines(20));
    CHECK(run.status == 1);
    const std::string expected =
        "the server refused the events (INVALID_ARGUMENT: events: batch #2 has too many events); "
        "retrying cannot fix this (the server counted the stream's first 10 events; the rest "
        "carried input lines 11-20)";
    CHECK_THAT(run.err, Catch::Contains(expected));
    const auto summary = run.Summary();
    CHECK(summary["accepted"] == 10);
    CHECK(summary["failed"] == 10);
    CHECK(summary["retries"] == 0);
  }
  SECTION("a refusal whose trailer count is not whole messages: nothing of it is trusted") {
    FakeIngestServer::Script script;
    script.refusal = {grpc::StatusCode::INVALID_ARGUMENT, "events: refused"};
    script.refusal_counted = 7;  // one event at a time, the first 7; in batches of 5, none
    FakeIngestServer server(script);
    args[3] = server.address();
    const CliRun run = Run(args, IdLines(20));
    CHECK(run.status == 1);
    const auto summary = run.Summary();
    CHECK(summary["accepted"] == (batched ? 0 : 7));
    CHECK(summary["failed"] == (batched ? 20 : 13));
    CHECK_THAT(run.err, Catch::Contains(batched ? "(that stream carried input lines 1-20)"
                                                : "(the server counted the stream's first 7 "
                                                  "events; the rest carried input lines 8-20)"));
  }
}
