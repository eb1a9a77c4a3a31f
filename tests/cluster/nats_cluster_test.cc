// The test support's NATS cluster (tests/support/nats_cluster) and port picks: a server that
// exits at start (what nats-server does when another process took one of its ports) costs a
// retry on fresh ports, not the test; one that never starts is reported with its reason.
#include "tests/support/nats_cluster.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace {

// A shell script standing in for nats-server: it counts its runs in `dir`/runs, exits 1 with
// nats-server's bind error for the first `failures` of them, then runs the real server.
std::string FlakyServer(const std::string& dir, int failures) {
  const std::string path = dir + "/flaky-nats-server";
  std::ofstream script(path);
  script << "#!/bin/sh\n"
         << "runs=$(cat '" << dir << "/runs' 2>/dev/null || echo 0)\n"
         << "echo $((runs + 1)) > '" << dir << "/runs'\n"
         << "if [ \"$runs\" -lt " << failures << " ]; then\n"
         << "  echo 'Error listening on port: listen tcp: bind: address already in use' >&2\n"
         << "  exit 1\n"
         << "fi\n"
         << "exec /usr/sbin/nats-server \"$@\"\n";
  script.close();
  ::chmod(path.c_str(), 0755);
  return path;
}

int Runs(const std::string& dir) {
  std::ifstream in(dir + "/runs");
  int runs = 0;
  in >> runs;
  return runs;
}

}  // namespace

TEST_CASE("nats cluster: a server that exits at start is started again on fresh ports",
          "[cluster]") {
  rta::testing::TempDir dir;
  rta::testing::NatsCluster nats(1, FlakyServer(dir.path(), 1));
  INFO(nats.error());
  REQUIRE(nats.ok());
  CHECK(Runs(dir.path()) == 2);
  CHECK(nats.running(0));
  // The first start's reason was kept: the server, its exit.
  CHECK(nats.error().find("n0") != std::string::npos);
  CHECK(nats.error().find("exit 1") != std::string::npos);
}

TEST_CASE("nats cluster: a server that never starts is reported, after three starts", "[cluster]") {
  rta::testing::TempDir dir;
  rta::testing::NatsCluster nats(3, FlakyServer(dir.path(), 1000));
  CHECK_FALSE(nats.ok());
  // Three starts, each stopped at the first server that exited.
  CHECK(Runs(dir.path()) == 3);
  CHECK(nats.error().find("exited with exit 1") != std::string::npos);
  CHECK_FALSE(nats.running(0));
}

TEST_CASE("free loopback ports: never the same one twice, and bindable when handed out",
          "[cluster]") {
  int ephemeral_low = 32768;
  int ephemeral_high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low >> ephemeral_high;
  const bool room_outside = ephemeral_low - 10000 >= 1000 || 65535 - ephemeral_high >= 1000;
  std::set<int> ports;
  for (int i = 0; i < 300; ++i) {
    const int port = rta::testing::FreeLoopbackPort();
    REQUIRE(port > 0);
    REQUIRE(ports.insert(port).second);
    if (room_outside) {
      INFO("port " << port << ", ephemeral range " << ephemeral_low << "-" << ephemeral_high);
      CHECK((port < ephemeral_low || port > ephemeral_high));
    }
  }
}
