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

TEST_CASE("send refuses text that is not UTF-8 before sending it", "[reporter][send]") {
  // Serialized anyway, such an event is one the server cannot parse at all.
  const CliRun page = Run({"send", "--type", "page_view", "--page", "/caf\xe9"});
  CHECK(page.status == 2);
  CHECK_THAT(page.err, Catch::Contains("--page: not valid UTF-8"));
  const CliRun property = Run({"send", "--type", "click", "--property", "k=\xed\xa0\x80"});
  CHECK(property.status == 2);  // a surrogate
  CHECK_THAT(property.err, Catch::Contains("--property: not valid UTF-8"));
  CHECK(Run({"send", "--type", "click", "--page", "/\xc0\xaf"}).status == 2);  // overlong '/'
  SECTION("real UTF-8 goes through") {
    ServerHarness server;
    const CliRun run = Run({"send", "--server", server.address(), "--type", "page_view", "--page",
                            "/caf\xc3\xa9/\xf0\x9f\x8d\xb0", "--json"});
    INFO(run.err);
    CHECK(run.status == 0);
    CHECK(run.Summary()["accepted"] == 1);
  }
}
