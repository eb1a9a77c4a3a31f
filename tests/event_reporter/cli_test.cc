// The command line's dispatch and usage errors: clear messages, exit status 2.
#include <catch2/catch.hpp>

#include "tests/event_reporter/cli_test_util.h"

using rta::reporter::testing::CliRun;
using rta::reporter::testing::Run;
using rta::reporter::testing::TempPath;

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
