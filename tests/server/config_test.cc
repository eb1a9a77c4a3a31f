#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "server/config_parser.h"

using rta::server::CommandLine;
using rta::server::IsLoopbackAddress;
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
  CHECK(cl.config.metrics_listen == "127.0.0.1:9464");  // loopback unless told otherwise
  CHECK(cl.config.default_window == "total");
  REQUIRE(ParseCommandLine({"--default-window", "all"}, &cl, &error));
  CHECK(cl.config.default_window == "all");
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

// Parses `args` into a fresh configuration: "" when accepted, otherwise the error message.
std::string Refusal(const std::vector<std::string>& args) {
  CommandLine fresh;
  std::string error;
  return ParseCommandLine(args, &fresh, &error) ? "" : error;
}

TEST_CASE("the defaults listen on loopback only, and loopback is told apart", "[server][config]") {
  CommandLine cl;
  std::string error;
  REQUIRE(ParseCommandLine({}, &cl, &error));
  CHECK(IsLoopbackAddress(cl.config.listen));
  CHECK(IsLoopbackAddress(cl.config.metrics_listen));
  for (const char* loopback : {"127.0.0.1:0", "127.1.2.3:50051", "[::1]:1", "localhost:5"}) {
    INFO(loopback);
    CHECK(IsLoopbackAddress(loopback));
  }
  for (const char* exposed : {"0.0.0.0:50051", "[::]:1", "10.0.0.1:5", "analytics.internal:1",
                              "localhost.example.com:1"}) {
    INFO(exposed);
    CHECK_FALSE(IsLoopbackAddress(exposed));
  }
  CHECK(cl.config.auth == "auto");
  CHECK_THAT(Refusal({"--auth", "maybe"}), Catch::Contains("auth: must be auto, required or off"));
  CHECK_THAT(Refusal({"--insecure", "2"}), Catch::Contains("insecure"));
  CHECK_THAT(Refusal({"--tls-cert", "a.pem"}),
             Catch::Contains("tls_key: --tls-cert needs --tls-key"));
  CHECK_THAT(Refusal({"--tls-key", "a.key"}),
             Catch::Contains("tls_cert: --tls-key needs --tls-cert"));
  CHECK_THAT(Refusal({"--tls-client-ca", "ca.pem"}), Catch::Contains("tls_client_ca"));
  REQUIRE(ParseCommandLine({"--init", "--data-dir", "x"}, &cl, &error));
  CHECK(cl.init);
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
  SECTION("cluster mode: servers, stream name, replicas, and a data dir for the checkpoints") {
    // Each on a fresh command line: a refused one leaves its values in `cl`.
    auto refusal = [](std::vector<std::string> args) {
      CommandLine fresh;
      std::string why;
      return ParseCommandLine(args, &fresh, &why) ? std::string("accepted") : why;
    };
    CHECK_THAT(refusal({"--cluster", "nats://127.0.0.1:4222", "--data-dir", ""}),
               Catch::Contains("cluster: needs --data-dir"));
    CHECK_THAT(refusal({"--cluster", "127.0.0.1:4222"}),
               Catch::Contains("cluster: expected nats://HOST:PORT"));
    CHECK_THAT(refusal({"--cluster", "nats://a:1", "--cluster-stream", "a.b"}),
               Catch::Contains("cluster_stream"));
    CHECK_THAT(refusal({"--cluster", "nats://a:1", "--cluster-replicas", "7"}),
               Catch::Contains("cluster_replicas: must be 1-5, got 7"));
    CHECK(refusal({"--cluster", "nats://a:1,nats://b:2", "--cluster-replicas", "3"}) == "accepted");
  }
  SECTION("a history segment or minute precision outside 10-14") {
    CHECK_FALSE(ParseCommandLine({"--history-segment-precision", "9"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("history_segment_precision"));
    CHECK(ParseCommandLine({"--history-segment-precision", "10"}, &cl, &error));
    CHECK(cl.config.history_segment_precision == 10);
    CHECK(cl.config.history_minute_precision == 14);
    CHECK_FALSE(ParseCommandLine({"--history-minute-precision", "15"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("history_minute_precision"));
    CHECK(ParseCommandLine({"--history-minute-precision", "12"}, &cl, &error));
    CHECK(cl.config.history_minute_precision == 12);
  }
  SECTION("an unknown default window") {
    CHECK_FALSE(ParseCommandLine({"--default-window", "2m"}, &cl, &error));
    CHECK(error == "default_window: must be 1m, 5m, 1h, total or all, got '2m'");
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
    CHECK_THAT(error, Catch::Contains("push_min_interval_ms: must be within 0..100 (tick_ms)"));
  }
  SECTION("a port that does not exist") {
    CHECK_THAT(Refusal({"--listen", "127.0.0.1:99999"}),
               Catch::Contains("listen: port must be a number within 0..65535"));
    CHECK_THAT(Refusal({"--metrics-listen", "0.0.0.0:-1"}),
               Catch::Contains("metrics_listen: port"));
    CHECK_THAT(Refusal({"--listen", "127.0.0.1:"}), Catch::Contains("listen: port"));
  }
  SECTION("a host that does not parse") {
    CHECK_THAT(Refusal({"--listen", "127.0.0.999:50051"}),
               Catch::Contains("'127.0.0.999' is neither"));
    CHECK_THAT(Refusal({"--listen", "::1:50051"}), Catch::Contains("needs brackets"));
    CHECK_THAT(Refusal({"--listen", "[::zz]:50051"}), Catch::Contains("not an IPv6 address"));
    CHECK_THAT(Refusal({"--listen", "bad host:1"}), Catch::Contains("listen: 'bad host'"));
  }
  SECTION("addresses that parse") {
    for (const char* ok : {"127.0.0.1:0", "[::1]:50051", "[::]:1", "localhost:65535",
                           "analytics.internal:50051", "0.0.0.0:9464"}) {
      INFO(ok);
      CHECK(Refusal({"--listen", ok}) == "");
    }
  }
  SECTION("sizes past their upper bound, which would wrap an int") {
    CHECK_THAT(Refusal({"--max-message-bytes", "4294967295"}),
               Catch::Contains("max_message_bytes: must be within 1024..268435456"));
    CHECK_THAT(Refusal({"--max-concurrent-streams-per-connection", "3000000000"}),
               Catch::Contains("max_concurrent_streams_per_connection: must be within"));
    CHECK_THAT(Refusal({"--memory-quota-bytes", "18446744073709551615"}),
               Catch::Contains("memory_quota_bytes: must be within"));
    CHECK_THAT(Refusal({"--shutdown-grace-ms", "4000000000"}),
               Catch::Contains("shutdown_grace_ms"));
    CHECK_THAT(Refusal({"--max-event-age-seconds", "-5"}),
               Catch::Contains("max_event_age_seconds: must be within 1..3600"));
  }
  SECTION("per-peer streams beyond the server's streams") {
    CHECK_THAT(Refusal({"--max-streams", "100", "--max-streams-per-peer", "101"}),
               Catch::Contains("max_streams_per_peer: must be within 1..100 (max_streams)"));
  }
  SECTION("an idle timeout too short to be meant") {
    CHECK_FALSE(ParseCommandLine({"--stream-idle-timeout-ms", "5"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("stream_idle_timeout_ms: must be within 100.."));
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
  SECTION("a directory as the file") {
    // Reading a directory throws inside the stream; it must come back as a refusal.
    CHECK_FALSE(ParseCommandLine({"--config", "."}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("config file '.': is a directory"));
    CHECK_FALSE(ParseCommandLine({"--config=/tmp"}, &cl, &error));
    CHECK_THAT(error, Catch::Contains("'/tmp': is a directory"));
  }
}

TEST_CASE("init_admin needs a data directory and tokens that are asked for", "[server][config]") {
  std::string error;
  CommandLine memory_only;
  CHECK_FALSE(ParseCommandLine({"--data-dir", "", "--init-admin", "1"}, &memory_only, &error));
  CHECK_THAT(error, Catch::Contains("init_admin: needs --data-dir"));
  CommandLine auth_off;
  CHECK_FALSE(ParseCommandLine({"--auth", "off", "--init-admin", "1"}, &auth_off, &error));
  CHECK_THAT(error, Catch::Contains("init_admin: --auth off"));
  CommandLine two;
  CHECK_FALSE(ParseCommandLine({"--init-admin", "2"}, &two, &error));
  CHECK_THAT(error, Catch::Contains("init_admin"));
  CommandLine fine;
  REQUIRE(ParseCommandLine({"--init-admin", "1"}, &fine, &error));
  CHECK(fine.config.init_admin == 1);
}

TEST_CASE("help documents every flag", "[server][config]") {
  const std::string help = rta::server::ServerHelpText();
  for (const char* flag :
       {"--listen", "--metrics-listen", "--workers", "--tick-ms", "--max-subscribers",
        "--max-event-bytes", "--dedupe-horizon-seconds", "--shutdown-grace-ms", "--config",
        "--push-min-interval-ms", "--max-streams-per-peer", "--stream-idle-timeout-ms"}) {
    CHECK_THAT(help, Catch::Contains(flag));
  }
}
