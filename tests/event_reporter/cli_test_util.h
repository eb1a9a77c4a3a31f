#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <istream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tests/support/server_harness.h"

// Shared by the event_reporter tests: running the command line in-process with its output
// captured, temporary files, and the exact answers of a JSON Lines file.
namespace rta::reporter::testing {

// Output of one run of the command line.
struct CliRun {
  int status = -1;
  std::string out;
  std::string err;
  nlohmann::json Summary() const { return nlohmann::json::parse(out); }
};

// Runs `event_reporter args...` in this process with `input` as its stdin.
CliRun Run(const std::vector<std::string>& args, const std::string& input = "");
// The same with any stream as its stdin.
CliRun Run(const std::vector<std::string>& args, std::istream& in);
// The same with `out` as its stdout (CliRun::out stays empty).
CliRun RunWithStdout(const std::vector<std::string>& args, std::istream& in, FILE* out);

// A path in the temporary directory, unique to this process.
std::string TempPath(const std::string& name);

// Exact answers computed from a JSON Lines file, independently of the generator's summary.
struct FileAnswers {
  uint64_t events = 0, page_views = 0, conversions = 0;
  double revenue = 0;
  std::set<std::string> visitors;
};
FileAnswers Answer(const std::string& path);

// `count` JSON lines of page views with ids e0, e1, ... (and nothing else).
std::string IdLines(int count);

// Generated traffic placed with --start-ms so that it ends a minute before now (the server
// accepts all of it); returns the file's path.
std::string GenerateFile(const std::string& name, int events, int seed, double rate = 20);

// The WINDOW_TOTAL value of a metric.
double Total(rta::testing::ServerHarness& server, const std::string& metric);

// Runs `bash -c command` in `directory`, with `path_prefix` put in front of PATH, as a user
// would in a shell. Waits at most `timeout`; a command still running then is killed (SIGKILL)
// and reported with status -1.
struct ShellRun {
  int status = -1;  // the exit status; 128 + N for a signal N
  std::string out;
  std::string err;
};
ShellRun RunShell(const std::string& command, const std::string& directory,
                  const std::string& path_prefix, std::chrono::milliseconds timeout);

// The whole file (empty when it cannot be read).
std::string ReadFile(const std::string& path);

// Starts `argv` (argv[0] a path) in the background with stdout and stderr into the two files;
// returns its pid.
int StartProcess(const std::vector<std::string>& argv, const std::string& out_path,
                 const std::string& err_path);

// Waits for `pid` at most `timeout`: its exit status (128 + N for a signal N). A process still
// running then is killed (SIGKILL) and reported with status -1.
int WaitOrKill(int pid, std::chrono::milliseconds timeout);

}  // namespace rta::reporter::testing
