// event_reporter: the JSON Lines parser, the traffic generator, and the command line against the
// real server on loopback (replay with exact counts, bad lines, strict mode, retries over broken
// streams, a server that comes up late, load balancing over two servers).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "event_reporter/cli.h"
#include "event_reporter/event_json.h"
#include "event_reporter/traffic_generator.h"
#include "tests/support/server_harness.h"

namespace {

using rta::reporter::EventToJson;
using rta::reporter::ParseEventJson;
using rta::testing::ServerHarness;

// Output of one run of the command line.
struct CliRun {
  int status = -1;
  std::string out;
  std::string err;
  nlohmann::json Summary() const { return nlohmann::json::parse(out); }
};

// A FILE* that collects what is written to it.
class MemoryFile {
 public:
  MemoryFile() : file_(open_memstream(&data_, &size_)) {}
  ~MemoryFile() {
    if (file_ != nullptr) std::fclose(file_);
    std::free(data_);
  }
  FILE* get() { return file_; }
  std::string Take() {
    std::fflush(file_);
    return std::string(data_, size_);
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  FILE* file_;
};

CliRun Run(const std::vector<std::string>& args, const std::string& input = "") {
  std::istringstream in(input);
  MemoryFile out;
  MemoryFile err;
  rta::reporter::CliEnvironment environment;
  environment.in = &in;
  environment.out = out.get();
  environment.err = err.get();
  CliRun run;
  run.status = rta::reporter::RunCli(args, environment);
  run.out = out.Take();
  run.err = err.Take();
  return run;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("rta_reporter_" + std::to_string(getpid()) + "_" + name))
      .string();
}

// Exact answers computed from a JSON Lines file, independently of the generator's summary.
struct FileAnswers {
  uint64_t events = 0, page_views = 0, conversions = 0;
  double revenue = 0;
  std::set<std::string> visitors;
};

FileAnswers Answer(const std::string& path) {
  FileAnswers answers;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) {
    const nlohmann::json event = nlohmann::json::parse(line);
    const std::string type = event.at("event_type");
    ++answers.events;
    answers.page_views += type == "page_view";
    answers.conversions += type == "purchase" || type == "signup";
    if (type == "purchase") answers.revenue += event.value("value", 0.0);
    answers.visitors.insert(event.value("visitor_id", ""));
  }
  return answers;
}

// A loopback port that nothing listens on right now.
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

// Generated traffic that ends a little before now, so the server accepts all of it.
std::string GenerateFile(const std::string& name, int events, int seed, double rate = 20) {
  const std::string path = TempPath(name);
  const int64_t start = rta::testing::NowMs() - static_cast<int64_t>(events / rate * 1000) - 60'000;
  const CliRun run =
      Run({"generate", "--events", std::to_string(events), "--seed", std::to_string(seed), "--rate",
           std::to_string(rate), "--output", path, "--start-ms", std::to_string(start)});
  REQUIRE(run.status == 0);
  return path;
}

double Total(ServerHarness& server, const std::string& metric) {
  return server.Metric(metric, analytics::WINDOW_TOTAL);
}

}  // namespace

TEST_CASE("JSON lines become events, and bad lines say why", "[reporter][json]") {
  analytics::EventData event;
  SECTION("every field") {
    REQUIRE(ParseEventJson(R"({"event_id":"e1","event_type":"purchase","timestamp_ms":1764000000000,
        "session_id":"s","visitor_id":"v","page":"/p","referrer":"r.com","utm_source":"g",
        "utm_campaign":"c","country":"DE","device":"mobile","value":12.5,
        "properties":{"k":"v"}})",
                           &event) == "");
    CHECK(event.event_id() == "e1");
    CHECK(event.timestamp_ms() == 1764000000000);
    CHECK(event.value() == 12.5);
    CHECK(event.country() == "DE");
    CHECK(event.properties().at("k") == "v");
    analytics::EventData again;
    REQUIRE(ParseEventJson(EventToJson(event), &again) == "");
    CHECK(again.SerializeAsString() == event.SerializeAsString());
  }
  SECTION("malformed JSON names the column") {
    const std::string error = ParseEventJson(R"({"event_type": page_view})", &event);
    CHECK_THAT(error, Catch::StartsWith("invalid JSON at column 16"));
  }
  SECTION("a number beyond a double is refused, not thrown") {
    // Found by fuzz/event_json_fuzzer: json::out_of_range escaped and ended the process.
    CHECK(ParseEventJson(R"({"event_type":"click","value":1e999})", &event) ==
          "invalid JSON: number overflow parsing '1e999'");
    CHECK(ParseEventJson("9225e807", &event) == "invalid JSON: number overflow parsing '9225e807'");
  }
  SECTION("a typo in a field name is refused, not dropped") {
    CHECK(ParseEventJson(R"({"event_type":"click","vistor_id":"v"})", &event) ==
          "unknown field \"vistor_id\"");
  }
  SECTION("wrong types") {
    CHECK(ParseEventJson(R"({"event_type":"click","timestamp_ms":"today"})", &event) ==
          "timestamp_ms: expected an integer (Unix milliseconds), got string");
    CHECK(ParseEventJson(R"({"event_type":"click","value":"1"})", &event) ==
          "value: expected a number, got string");
    CHECK(ParseEventJson(R"({"event_type":3})", &event) ==
          "event_type: expected a string, got number");
    CHECK(ParseEventJson(R"([1,2])", &event) == "expected a JSON object, got array");
  }
  SECTION("event_type is required") {
    CHECK(ParseEventJson(R"({"page":"/"})", &event) == "event_type: required");
  }
}

TEST_CASE("the generator is deterministic for a seed and shaped like a real site",
          "[reporter][generator]") {
  rta::reporter::GeneratorOptions options;
  options.seed = 42;
  options.events_per_second = 100;
  options.start_ms = 1'764'000'000'000;
  rta::reporter::TrafficGenerator a(options), b(options);
  options.seed = 43;
  rta::reporter::TrafficGenerator other(options);
  analytics::EventData x, y, z;
  std::map<std::string, int> types;
  std::set<std::string> sessions, bounced_candidates;
  int64_t previous = 0, first = 0;
  constexpr int kEvents = 30'000;
  bool all_equal = true, all_differ = true;
  for (int i = 0; i < kEvents; ++i) {
    a.Next(&x);
    b.Next(&y);
    other.Next(&z);
    all_equal &= x.SerializeAsString() == y.SerializeAsString();
    all_differ &= x.event_id() != z.event_id();
    CHECK(x.timestamp_ms() >= previous);
    previous = x.timestamp_ms();
    if (i == 0) first = x.timestamp_ms();
    ++types[x.event_type()];
    sessions.insert(x.session_id());
    if (x.event_type() == "page_load") CHECK(x.value() > 0);
    if (x.event_type() == "purchase") CHECK(x.value() > 0);
  }
  CHECK(all_equal);
  CHECK(all_differ);
  CHECK(first >= options.start_ms);
  // The long-run rate is the one asked for (Poisson arrivals: within 10% over 300 s).
  const double seconds = (previous - first) / 1000.0;
  CHECK(kEvents / seconds == Approx(100).epsilon(0.1));
  // Every page view has its page load; the funnel narrows.
  CHECK(types["page_view"] == Approx(types["page_load"]).epsilon(0.01));
  CHECK(types["page_view"] > types["add_to_cart"]);
  CHECK(types["add_to_cart"] > types["purchase"]);
  CHECK(types["purchase"] > 0);
  CHECK(types["click"] > 0);
  CHECK(sessions.size() > 1'000);
}

TEST_CASE("a funnel that nobody leaves the landing page of has no purchases",
          "[reporter][generator]") {
  rta::reporter::GeneratorOptions options;
  options.funnel.landing_to_product = 0;
  rta::reporter::TrafficGenerator generator(options);
  analytics::EventData event;
  for (int i = 0; i < 5'000; ++i) {
    generator.Next(&event);
    REQUIRE(event.event_type() != "purchase");
    REQUIRE(event.event_type() != "add_to_cart");
  }
}

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
  // HyperLogLog p = 14: standard error 0.81%; 4 sigma.
  CHECK(Total(server, "unique_visitors") ==
        Approx(static_cast<double>(answers.visitors.size())).epsilon(0.033));
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

TEST_CASE("streams broken mid-way are re-sent: nothing lost, nothing counted twice",
          "[reporter][retry]") {
  auto config = ServerHarness::DefaultConfig();
  config.fail_every_nth_ingest_stream_for_test = 3;  // after its first message is counted
  ServerHarness server(config);
  const std::string path = GenerateFile("retry.jsonl", 5'000, 11);
  const FileAnswers answers = Answer(path);
  const bool batched = GENERATE(true, false);
  std::vector<std::string> args = {
      "replay", path,           "--server", server.address(), "--json", "--stream-events",
      "400",    "--batch-size", "100"};
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
  const int port = UnusedPort();
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
  const std::string address = "127.0.0.1:" + std::to_string(UnusedPort());
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
  const CliRun run =
      Run({"replay", path, "--server", server.address(), "--json", "--batch-size", "50"});
  CHECK(run.status == 1);
  CHECK_THAT(run.err, Catch::Contains("the server refused the events (INVALID_ARGUMENT: events: "
                                      "batch #0 has 50 events, limit 10)"));
  const auto summary = run.Summary();
  CHECK(summary["failed"] == 100);
  CHECK(summary["retries"] == 0);
  std::remove(path.c_str());
}

TEST_CASE("several servers: streams are balanced and the sum of their counts is exact",
          "[reporter][balance]") {
  ServerHarness first, second;
  const std::string path = GenerateFile("balance.jsonl", 4'000, 9);
  const CliRun run = Run({"replay", path, "--server", first.address() + "," + second.address(),
                          "--streams", "4", "--stream-events", "200", "--json"});
  INFO(run.err);
  REQUIRE(run.status == 0);
  const double a = Total(first, "events_total");
  const double b = Total(second, "events_total");
  CHECK(a + b == 4'000);
  CHECK(a > 0);
  CHECK(b > 0);
  std::remove(path.c_str());
}

TEST_CASE("send: one event from flags", "[reporter][send]") {
  ServerHarness server;
  const CliRun run =
      Run({"send", "--server", server.address(), "--type", "purchase", "--value", "19.99",
           "--visitor", "v9", "--session", "s9", "--property", "plan=pro", "--json"});
  INFO(run.err);
  CHECK(run.status == 0);
  CHECK(run.Summary()["accepted"] == 1);
  CHECK(Total(server, "revenue") == Approx(19.99));
  CHECK(Total(server, "conversions") == 1);
}

TEST_CASE("usage errors are clear and exit 2", "[reporter][cli]") {
  CHECK(Run({}).status == 2);
  CHECK(Run({"frobnicate"}).status == 2);
  const CliRun typo = Run({"replay", "x.jsonl", "--sever", "a:1"});
  CHECK(typo.status == 2);
  CHECK_THAT(typo.err, Catch::Contains("unknown flag --sever"));
  const CliRun address = Run({"send", "--type", "click", "--server", "no-port-here"});
  CHECK(address.status == 2);
  CHECK_THAT(address.err, Catch::Contains("bad server address \"no-port-here\""));
  const CliRun missing = Run({"replay", TempPath("does-not-exist")});
  CHECK(missing.status == 2);
  CHECK_THAT(missing.err, Catch::Contains("cannot open"));
  CHECK(Run({"send"}).status == 2);
  CHECK(Run({"generate", "--output", "x"}).status == 2);  // needs --events or --duration
  CHECK(Run({"generate", "--funnel", "0.5,2,0.1,0.1"}).status == 2);
  for (const char* mode : {"replay", "generate", "send"}) {
    const CliRun help = Run({mode, "--help"});
    CHECK(help.status == 0);
    CHECK_THAT(help.out, Catch::Contains("Examples:"));
  }
}
