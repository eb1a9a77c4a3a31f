#include "clients/common/client_channel.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "clients/common/flags.h"

namespace rta::client {
namespace {

TEST_CASE("a token goes in plaintext only to loopback unless --insecure", "[clients]") {
  ChannelOptions options;
  options.token = "rta_secret";
  std::string error;
  for (const char* loopback : {"127.0.0.1:50051", "localhost:1", "[::1]:2", "127.9.9.9:3"}) {
    INFO(loopback);
    options.servers = {loopback};
    CHECK(MakeChannel(options, &error) != nullptr);
  }
  options.servers = {"127.0.0.1:50051", "10.1.2.3:50051"};
  CHECK(MakeChannel(options, &error) == nullptr);
  CHECK_THAT(error, Catch::Contains("refusing to send the token in plaintext to 10.1.2.3:50051"));
  options.allow_plaintext_token = true;
  CHECK(MakeChannel(options, &error) != nullptr);
  options.allow_plaintext_token = false;
  options.token.clear();  // no token, nothing to protect
  CHECK(MakeChannel(options, &error) != nullptr);
}

TEST_CASE("connection flags fill the options, and TLS flags must go together", "[clients]") {
  const std::string file = "/tmp/rta_client_common_token_test";
  std::ofstream(file) << "rta_from_file\n";
  Flags flags({"--server", "10.0.0.1:1,10.0.0.2:2", "--token-file", file, "--tls-ca", "/nonexistent.pem",
               "--tls-server-name", "analytics.internal", "--insecure"},
              ConnectionValueFlags(), ConnectionSwitches());
  ChannelOptions options;
  ReadConnectionFlags(flags, &options);
  REQUIRE(flags.error().empty());
  CHECK(options.servers == std::vector<std::string>{"10.0.0.1:1", "10.0.0.2:2"});
  CHECK(options.token == "rta_from_file");
  CHECK(options.tls_server_name == "analytics.internal");
  CHECK(options.allow_plaintext_token);
  std::string error;
  CHECK(MakeChannel(options, &error) == nullptr);
  CHECK_THAT(error, Catch::Contains("cannot read the TLS CA file /nonexistent.pem"));

  Flags both({"--token", "t", "--token-file", file}, ConnectionValueFlags(),
             ConnectionSwitches());
  ReadConnectionFlags(both, &options);
  CHECK_THAT(both.error(), Catch::Contains("--token and --token-file"));
  ChannelOptions half;
  half.tls_cert_file = "/a.pem";
  half.tls_ca_file = "/b.pem";
  CHECK(MakeChannel(half, &error) == nullptr);
  CHECK_THAT(error, Catch::Contains("--tls-cert and --tls-key go together"));
  ChannelOptions name_only;
  name_only.tls_server_name = "x";
  CHECK(MakeChannel(name_only, &error) == nullptr);
  CHECK_THAT(error, Catch::Contains("--tls-server-name"));
  std::remove(file.c_str());
}

}  // namespace
}  // namespace rta::client
