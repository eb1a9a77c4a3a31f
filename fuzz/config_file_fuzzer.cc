// Fuzz target: the server's JSON config file (`analytics_server --config FILE`).
//
// Input: the file's bytes. ParseCommandLine({"--config", FILE}) must accept it or refuse it with
// a message, never throw or crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "fuzz/memory_file.h"
#include "server/config_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static MemoryFile file;
  file.Set(data, size);
  rta::server::CommandLine command_line;
  std::string error;
  const bool ok = rta::server::ParseCommandLine({"--config", file.path()}, &command_line, &error);
  RTA_FUZZ_CHECK(ok == error.empty());  // a refusal always says why
  return 0;
}
