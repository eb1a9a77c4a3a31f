#include "tests/event_reporter/cli_test_util.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "event_reporter/cli.h"

namespace rta::reporter::testing {
namespace {

// A FILE* that collects what is written to it.
class MemoryFile {
 public:
  MemoryFile() : file_(open_memstream(&data_, &size_)) {}
  ~MemoryFile() {
    if (file_ != nullptr) std::fclose(file_);
    std::free(data_);
  }
  FILE* get() { return file_; }
  std::string Take() {
    std::fflush(file_);
    return std::string(data_, size_);
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  FILE* file_;
};

// Waits for `pid` until `deadline`; its exit status (128 + N for signal N), or nullopt when it
// is still running then.
std::optional<int> WaitUntil(int pid, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// fork + exec with stdout and stderr into files (stdin from /dev/null); returns the pid.
int Spawn(const std::vector<std::string>& argv, const std::string& directory,
          const std::string& path_prefix, const std::string& out_path,
          const std::string& err_path) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  // The child's environment is built here: after fork() in a process with other threads (gRPC's)
  // only async-signal-safe calls are allowed, and setenv() is not one.
  std::vector<std::string> environment;
  bool has_path = false;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string variable = *entry;
    if (variable.rfind("PATH=", 0) == 0) {
      has_path = true;
      if (!path_prefix.empty()) variable = "PATH=" + path_prefix + ":" + variable.substr(5);
    }
    environment.push_back(std::move(variable));
  }
  if (!has_path) environment.push_back("PATH=" + path_prefix + ":/usr/bin:/bin");
  std::vector<char*> envp;
  for (std::string& variable : environment) envp.push_back(variable.data());
  envp.push_back(nullptr);
  const int pid = fork();
  if (pid == 0) {
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 ||
        (!directory.empty() && chdir(directory.c_str()) != 0)) {
      _exit(127);
    }
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

CliRun Run(const std::vector<std::string>& args, const std::string& input) {
  std::istringstream in(input);
  return Run(args, in);
}

CliRun Run(const std::vector<std::string>& args, std::istream& in) {
  MemoryFile out;
  CliRun run = RunWithStdout(args, in, out.get());
  run.out = out.Take();
  return run;
}

CliRun RunWithStdout(const std::vector<std::string>& args, std::istream& in, FILE* out) {
  MemoryFile err;
  CliEnvironment environment;
  environment.in = &in;
  environment.out = out;
  environment.err = err.get();
  CliRun run;
  run.status = RunCli(args, environment);
  run.err = err.Take();
  return run;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("rta_reporter_" + std::to_string(getpid()) + "_" + name))
      .string();
}

FileAnswers Answer(const std::string& path) {
  FileAnswers answers;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) {
    const nlohmann::json event = nlohmann::json::parse(line);
    const std::string type = event.at("event_type");
    ++answers.events;
    answers.page_views += type == "page_view";
    answers.conversions += type == "purchase" || type == "signup";
    if (type == "purchase") answers.revenue += event.value("value", 0.0);
    answers.visitors.insert(event.value("visitor_id", ""));
  }
  return answers;
}

std::string IdLines(int count) {
  std::string lines;
  for (int i = 0; i < count; ++i) {
    // Built with append: GCC 12 warns (-Wrestrict, a false positive) on "e" + to_string here.
    std::string id = "e";
    id += std::to_string(i);
    lines += nlohmann::json{{"event_id", id}, {"event_type", "page_view"}}.dump();
    lines += '\n';
  }
  return lines;
}

std::string GenerateFile(const std::string& name, int events, int seed, double rate) {
  const std::string path = TempPath(name);
  const int64_t start = rta::testing::NowMs() - static_cast<int64_t>(events / rate * 1000) - 60'000;
  const CliRun run =
      Run({"generate", "--events", std::to_string(events), "--seed", std::to_string(seed), "--rate",
           std::to_string(rate), "--output", path, "--start-ms", std::to_string(start)});
  INFO(run.err);
  REQUIRE(run.status == 0);
  return path;
}

double Total(rta::testing::ServerHarness& server, const std::string& metric) {
  return server.Metric(metric, analytics::WINDOW_TOTAL);
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

int StartProcess(const std::vector<std::string>& argv, const std::string& out_path,
                 const std::string& err_path) {
  return Spawn(argv, "", "", out_path, err_path);
}

int WaitOrKill(int pid, std::chrono::milliseconds timeout) {
  if (const std::optional<int> status =
          WaitUntil(pid, std::chrono::steady_clock::now() + timeout)) {
    return *status;
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

ShellRun RunShell(const std::string& command, const std::string& directory,
                  const std::string& path_prefix, std::chrono::milliseconds timeout) {
  static int runs = 0;
  const std::string out_path = TempPath("shell" + std::to_string(++runs) + ".out");
  const std::string err_path = out_path.substr(0, out_path.size() - 4) + ".err";
  const int pid = Spawn({"/bin/bash", "-c", command}, directory, path_prefix, out_path, err_path);
  REQUIRE(pid > 0);
  ShellRun run;
  run.status = WaitOrKill(pid, timeout);
  run.out = ReadFile(out_path);
  run.err = ReadFile(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return run;
}

}  // namespace rta::reporter::testing
