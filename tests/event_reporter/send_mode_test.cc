// send mode: one event from flags, against the real server on loopback.
#include <catch2/catch.hpp>

#include "tests/event_reporter/cli_test_util.h"
#include "tests/support/server_harness.h"

using rta::reporter::testing::CliRun;
using rta::reporter::testing::Run;
using rta::reporter::testing::Total;
using rta::testing::ServerHarness;

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
