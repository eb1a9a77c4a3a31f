// analytics_ctl against the real server (in-process, ephemeral loopback port): users, tokens
// and the support chat, as an admin would use them.
#include "analytics_ctl/ctl.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <streambuf>

#include "server/access_init.h"
#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"

namespace {

using rta::testing::ServerHarness;
using rta::testing::TempDir;

struct Result {
  int status;
  std::string out, err;
};

// A data directory initialised like `analytics_server --init`, and a server on it.
struct Fixture {
  Fixture() {
    rta::server::ServerConfig config = ServerHarness::DefaultConfig();
    config.data_dir = dir.path();
    std::string report, error;
    REQUIRE(rta::server::InitAccess(config, &report, &error));
    harness = std::make_unique<ServerHarness>(config);
  }
  Result Run(std::vector<std::string> args, const std::string& input = "",
             const std::string& token_file = "") {
    std::ostringstream out;
    Result result = RunTo(out, std::move(args), input, token_file);
    result.out = out.str();
    return result;
  }
  // Run with stdout being `out` (Result::out stays empty).
  Result RunTo(std::ostream& out, std::vector<std::string> args, const std::string& input,
               const std::string& token_file) {
    args.insert(args.begin(), {"--server", harness->address(), "--token-file",
                               token_file.empty() ? dir.path() + "/admin.token" : token_file});
    std::istringstream in(input);
    std::ostringstream err;
    static const std::atomic<bool> never{false};
    const int status = rta::ctl::RunCtl(args, {&in, &out, &err, &never});
    INFO(err.str());
    return {status, "", err.str()};
  }
  std::string WriteTokenFile(const std::string& name, const std::string& token) {
    const std::string path = dir.path() + "/" + name;
    std::ofstream(path) << token << "\n";
    return path;
  }
  TempDir dir;
  std::unique_ptr<ServerHarness> harness;
};

}  // namespace

TEST_CASE("users update reads JSON Lines, reports bad items, and users list and get read back",
          "[ctl]") {
  Fixture f;
  const Result update = f.Run({"users", "update"},
                              R"({"user_id":"ana","email":"ana@example.com","roles":["analyst"]})"
                              "\n"
                              R"({"user_id":"rob","roles":["reporter"]})"
                              "\n"
                              R"({"user_id":"bad","email":"nope"})"
                              "\n");
  CHECK(update.status == 1);
  CHECK_THAT(update.out, Catch::Contains(R"("upserted":2)"));
  CHECK_THAT(update.err, Catch::Contains("item #3 (user_id bad): email"));

  const Result list = f.Run({"users", "list", "--page-size", "1"});  // pages of one
  CHECK(list.status == 0);
  CHECK(
      list.out ==
      "{\"user_id\":\"admin\",\"name\":\"Administrator\",\"email\":\"\",\"roles\":[\"admin\"]}\n"
      "{\"user_id\":\"ana\",\"name\":\"\",\"email\":\"ana@example.com\",\"roles\":[\"analyst\"]}\n"
      "{\"user_id\":\"rob\",\"name\":\"\",\"email\":\"\",\"roles\":[\"reporter\"]}\n");
  CHECK(f.Run({"users", "list", "--role", "reporter"}).out ==
        "{\"user_id\":\"rob\",\"name\":\"\",\"email\":\"\",\"roles\":[\"reporter\"]}\n");
  CHECK_THAT(f.Run({"users", "get", "ana"}).out, Catch::Contains("ana@example.com"));
  const Result missing = f.Run({"users", "get", "zed"});
  CHECK(missing.status == 1);
  CHECK_THAT(missing.err, Catch::Contains("NOT_FOUND"));
  const Result bad_json = f.Run({"users", "update"}, "{\"user_id\": }\n");
  CHECK(bad_json.status == 2);
  CHECK_THAT(bad_json.err, Catch::Contains("stdin line 1"));
}

TEST_CASE("tokens create prints the secret once, list never shows it, revoke ends it", "[ctl]") {
  Fixture f;
  REQUIRE(f.Run({"users", "update"}, R"({"user_id":"rob","roles":["reporter"]})").status == 0);
  const Result created =
      f.Run({"tokens", "create", "rob", "--expires-in", "30d", "--description", "ci pipeline"});
  REQUIRE(created.status == 0);
  const std::string token = created.out.substr(0, created.out.find('\n'));
  CHECK(token.rfind("rta_", 0) == 0);
  CHECK_THAT(created.err, Catch::Contains("shown this once"));
  const Result listed = f.Run({"tokens", "list", "rob"});
  CHECK_THAT(listed.out, Catch::Contains("ci pipeline"));
  CHECK(listed.out.find(token) == std::string::npos);
  // A reporter's token is refused by the admin commands, with the reason.
  const std::string rob_file = f.WriteTokenFile("rob.token", token);
  const Result refused = f.Run({"users", "list"}, "", rob_file);
  CHECK(refused.status == 1);
  CHECK_THAT(refused.err, Catch::Contains("PERMISSION_DENIED: ListUsers needs role admin"));
  const std::string token_id = listed.out.substr(listed.out.find("\"token_id\":\"") + 12, 12);
  CHECK(f.Run({"tokens", "revoke", token_id}).status == 0);
  CHECK(f.Run({"tokens", "list", "rob"}).out.find(R"("revoked_ms":"0")") == std::string::npos);
  CHECK_THAT(f.Run({"tokens", "create", "rob", "--expires-in", "soon"}).err,
             Catch::Contains("--expires-in"));
  CHECK(f.Run({"users", "frobnicate"}).status == 2);
}

TEST_CASE("chat in a pipe: a question, then an answer, each seen by the other side", "[ctl]") {
  Fixture f;
  REQUIRE(f.Run({"users", "update"}, R"({"user_id":"ana","roles":["analyst"]})").status == 0);
  const Result created = f.Run({"tokens", "create", "ana"});
  const std::string ana_file =
      f.WriteTokenFile("ana.token", created.out.substr(0, created.out.find('\n')));
  const Result asked =
      f.Run({"chat", "--linger-ms", "200"}, "Is the revenue tile in EUR?\n", ana_file);
  INFO(asked.err);
  CHECK(asked.status == 0);
  CHECK_THAT(asked.out, Catch::Contains(R"("from_user":"ana")"));  // the echo
  const Result answered = f.Run({"chat", "--linger-ms", "300"}, "@ana Yes, EUR.\n");
  CHECK(answered.status == 0);
  CHECK_THAT(answered.out, Catch::Contains("Is the revenue tile in EUR?"));  // replayed
  CHECK_THAT(answered.out, Catch::Contains(R"("replayed":true)"));
  const Result read = f.Run({"chat", "--linger-ms", "200"}, "", ana_file);
  CHECK_THAT(read.out, Catch::Contains("Yes, EUR."));
  CHECK_THAT(read.out, Catch::Contains(R"("to_user":"ana")"));
}

// stdout that takes no byte, as on a full disk (or a closed pipe with SIGPIPE ignored).
class RefusingBuffer : public std::streambuf {
 protected:
  int_type overflow(int_type) override { return traits_type::eof(); }
};

TEST_CASE("chat stops when what arrives cannot be written and says so", "[ctl]") {
  Fixture f;
  REQUIRE(f.Run({"users", "update"}, R"({"user_id":"ana","roles":["analyst"]})").status == 0);
  RefusingBuffer refusing;
  std::ostream full(&refusing);
  // The echo of the question is the first message to write. Without the stop the chat would
  // wait out the minute of --linger-ms and exit 0 with every message lost.
  const auto start = std::chrono::steady_clock::now();
  const Result chat = f.RunTo(full, {"chat", "--linger-ms", "60000"}, "@ana Is it EUR?\n", "");
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(chat.status == 1);
  CHECK_THAT(chat.err, Catch::Contains("writing the messages failed; stopping"));
  CHECK(took < std::chrono::seconds(30));
}
