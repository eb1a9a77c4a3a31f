#include "tests/event_reporter/cli_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

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

}  // namespace

CliRun Run(const std::vector<std::string>& args, const std::string& input) {
  std::istringstream in(input);
  MemoryFile out;
  MemoryFile err;
  CliEnvironment environment;
  environment.in = &in;
  environment.out = out.get();
  environment.err = err.get();
  CliRun run;
  run.status = RunCli(args, environment);
  run.out = out.Take();
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

int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
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

}  // namespace rta::reporter::testing
