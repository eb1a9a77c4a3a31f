#pragma once

#include <atomic>
#include <cstdio>
#include <istream>
#include <string>
#include <vector>

namespace rta::reporter {

// Where the command line talks to: the process's stdin/stdout/stderr in main(), buffers in
// tests.
struct CliEnvironment {
  std::istream* in = nullptr;
  FILE* out = stdout;            // the summary (text or --json), generated events with --output -
  FILE* err = stderr;            // errors, retries, rejected events, the progress line
  bool err_is_terminal = false;  // show the live progress line
  // Set by the first SIGINT/SIGTERM: stop reading or generating, deliver what is queued.
  const std::atomic<bool>* interrupted = nullptr;
};

// Exit status after SIGINT/SIGTERM when not everything read was acknowledged within --drain-ms
// (or a file was not read to its end): the summary says where to resume.
inline constexpr int kExitInterrupted = 3;

// Runs `event_reporter <mode> [flags]` (args exclude the program name). Returns the exit
// status: 0 all delivered, 1 some line or event was refused or not delivered, 2 bad usage,
// kExitInterrupted (3) interrupted before everything was acknowledged.
int RunCli(const std::vector<std::string>& args, const CliEnvironment& environment);

}  // namespace rta::reporter
