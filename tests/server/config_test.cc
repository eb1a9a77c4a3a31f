#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "server/config_parser.h"

using rta::server::CommandLine;
using rta::server::ParseCommandLine;

namespace {

std::string WriteTempFile(const std::string& content) {
  char path[] = "/tmp/rta_config_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << content;
  return path;
}

}  // namespace

TEST_CASE("flags set the documented keys", "[server][config]") {
  CommandLine cl;
  std::string error;
  REQUIRE(ParseCommandLine({"--listen", "127.0.0.1:6000", "--tick-ms=250", "--workers", "3",
                            "--dedupe-horizon-seconds", "60"},
                           &cl, &error));
  CHECK(cl.config.listen == "127.0.0.1:6000");
  CHECK(cl.config.tick_ms == 250);
  CHECK(cl.config.workers == 3);
  CHECK(cl.config.aggregator.dedupe_horizon_seconds == 60);
  CHECK(cl.config.metrics_listen == "0.0.0.0:9464");
}

TEST_CASE("a JSON config file applies, and flags win over it", "[server][config]") {
  const std::string path =
      WriteTempFile(R"({"listen": "127.0.0.1:7000", "tick_ms": 500, "max_subscribers": 7})");
  CommandLine cl;
  std::string error;
  REQUIRE(ParseCommandLine({"--tick-ms", "200", "--config", path}, &cl, &error));
  CHECK(cl.config.listen == "127.0.0.1:7000");
  CHECK(cl.config.tick_ms == 200);
  CHECK(cl.config.max_subscribers == 7);
  std::remove(path.c_str());
}

TEST_CASE("a bad configuration is refused with a message naming the key", "[server][config]") {
  CommandLine cl;
  std::string error;
  SECTION("unknown key in the file") {
    const std::string path = WriteTempFile(R"({"tick_ms": 100, "tikc_ms": 5})");
    CHECK_FALSE(ParseCommandLine({"--config", path}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("unknown key 'tikc_ms'"));
    std::remove(path.c_str());
  }
  SECTION("wrong type in the file") {
    const std::string path = WriteTempFile(R"({"workers": "four"})");
    CHECK_FALSE(ParseCommandLine({"--config", path}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("'workers'"));
    std::remove(path.c_str());
  }
  SECTION("negative value for an unsigned key") {
    const std::string path = WriteTempFile(R"({"max_streams": -1})");
    CHECK_FALSE(ParseCommandLine({"--config", path}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("'max_streams'"));
    std::remove(path.c_str());
  }
  SECTION("malformed JSON keeps the position") {
    const std::string path = WriteTempFile("{\"tick_ms\": 100,,}");
    CHECK_FALSE(ParseCommandLine({"--config", path}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("line 1"));
    std::remove(path.c_str());
  }
  SECTION("out of range flag") {
    CHECK_FALSE(ParseCommandLine({"--tick-ms", "10"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("tick_ms"));
  }
  SECTION("push pacing longer than the tick") {
    CHECK_FALSE(
        ParseCommandLine({"--tick-ms", "100", "--push-min-interval-ms", "150"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("push_min_interval_ms: at most tick_ms (100)"));
  }
  SECTION("not a number") {
    CHECK_FALSE(ParseCommandLine({"--workers", "many"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("--workers"));
  }
  SECTION("unknown flag") {
    CHECK_FALSE(ParseCommandLine({"--bogus", "1"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("--bogus"));
  }
  SECTION("missing file") {
    CHECK_FALSE(ParseCommandLine({"--config", "/nonexistent/x.json"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("cannot open"));
  }
}

TEST_CASE("help documents every flag", "[server][config]") {
  const std::string help = rta::server::ServerHelpText();
  for (const char* flag : {"--listen", "--metrics-listen", "--workers", "--tick-ms",
                           "--max-subscribers", "--max-event-bytes", "--dedupe-horizon-seconds",
                           "--shutdown-grace-ms", "--config", "--push-min-interval-ms"}) {
    CHECK_THAT(help, Catch::Contains(flag));
  }
}
