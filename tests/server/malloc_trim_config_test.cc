// The memory-return setting (--malloc-trim-interval-ms): its default and its bounds.
#include <catch2/catch.hpp>

#include "server/config_parser.h"

using rta::server::CommandLine;
using rta::server::ParseCommandLine;

TEST_CASE("malloc_trim_interval_ms is on by default, 0 turns it off, tiny values are refused",
          "[server][config]") {
  CommandLine cl;
  std::string error;
  REQUIRE(ParseCommandLine({}, &cl, &error));
  CHECK(cl.config.malloc_trim_interval_ms == 10'000);
  REQUIRE(ParseCommandLine({"--malloc-trim-interval-ms", "0"}, &cl, &error));
  CHECK(cl.config.malloc_trim_interval_ms == 0);
  CHECK_FALSE(ParseCommandLine({"--malloc-trim-interval-ms", "50"}, &cl, &error));
  CHECK_THAT(error, Catch::Contains("malloc_trim_interval_ms"));
}
