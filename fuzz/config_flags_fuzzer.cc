// Fuzz target: the server's command line (`analytics_server --flag VALUE ...`).
//
// Input: the arguments, one per line. A `--config` value is replaced by an in-memory file with a
// fixed valid config, so that the fuzzer exercises flags over a file without opening arbitrary
// paths (the file's own parsing has the config_file target). ParseCommandLine must accept the
// arguments or refuse them with a message, never throw or crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "fuzz/memory_file.h"
#include "server/config_parser.h"

namespace {

std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.emplace_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

// Points every --config at `path`, pairing flags with values as ParseCommandLine does (so that
// no input reaches a real file: a path such as /dev/stdin would block the run).
void RedirectConfig(std::vector<std::string>* args, const std::string& path) {
  for (size_t i = 0; i < args->size(); ++i) {
    std::string& arg = (*args)[i];
    if (rta::server::IsSwitch(arg) || arg.rfind("--", 0) != 0) continue;
    if (arg.rfind("--config=", 0) == 0) {
      arg = "--config=" + path;
    } else if (arg.find('=') == std::string::npos && i + 1 < args->size()) {
      if (arg == "--config") (*args)[i + 1] = path;
      ++i;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static MemoryFile* const file = [] {
    auto* f = new MemoryFile;
    f->Set(R"({"listen": "127.0.0.1:0", "tick_ms": 250, "max_subscribers": 100})");
    return f;
  }();
  std::vector<std::string> args =
      SplitLines(std::string_view(reinterpret_cast<const char*>(data), size));
  RedirectConfig(&args, file->path());

  rta::server::CommandLine command_line;
  std::string error;
  const bool ok = rta::server::ParseCommandLine(args, &command_line, &error);
  RTA_FUZZ_CHECK(ok == error.empty());  // a refusal always says why
  return 0;
}
