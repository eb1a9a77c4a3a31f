#include "bench/load/process_stats.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace rta::bench {

ProcessSample SampleProcess(pid_t pid) {
  ProcessSample sample;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name (which may contain spaces) start after the last ')'.
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::stoul(field);
      if (i == 15) stime = std::stoul(field);
    }
    sample.cpu_seconds = static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
    sample.cpu_user_seconds = static_cast<double>(utime) / sysconf(_SC_CLK_TCK);
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) sample.rss_bytes = std::stoull(line.substr(6)) * 1024;
    if (line.rfind("RssAnon:", 0) == 0) sample.rss_anon_bytes = std::stoull(line.substr(8)) * 1024;
  }
  return sample;
}

uint64_t WriteBytes(pid_t pid) {
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  std::string line;
  while (std::getline(io, line)) {
    if (line.rfind("write_bytes:", 0) == 0) return std::stoull(line.substr(12));
  }
  return 0;
}

ServerProcess::ServerProcess(const std::string& binary, int tick_ms,
                             const std::string& extra_flags) {
  char path[] = "/tmp/rta_bench_server_XXXXXX";
  const int fd = mkstemp(path);
  close(fd);
  log_path_ = path;
  const std::string command =
      "exec " + binary +
      " --listen 127.0.0.1:0 --metrics-listen '' --http-listen '' --data-dir '' " + "--tick-ms " +
      std::to_string(tick_ms) + " " + extra_flags + " 2>" + log_path_;
  const auto forked = std::chrono::steady_clock::now();
  pid_ = fork();
  if (pid_ == 0) {
    // If the driver dies (a ctest timeout kills it), the server goes too instead of lingering.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::regex listening(R"(event=listening .*port=(\d+))");
  const std::regex metrics(R"(event=metrics_listening .*port=(\d+))");
  const std::regex http(R"(event=http_listening .*port=(\d+))");
  // Long enough for a recovery that replays a large event log.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  const bool wants_metrics = extra_flags.find("--metrics-listen") != std::string::npos;
  while (std::chrono::steady_clock::now() < deadline &&
         (port_ == 0 || (wants_metrics && metrics_port_ == 0))) {
    std::ifstream log(log_path_);
    std::string line;
    std::smatch match;
    while (std::getline(log, line)) {
      if (port_ == 0 && std::regex_search(line, match, listening)) {
        port_ = std::stoi(match[1]);
        startup_seconds_ =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - forked).count();
      }
      if (std::regex_search(line, match, metrics)) metrics_port_ = std::stoi(match[1]);
      if (std::regex_search(line, match, http)) http_port_ = std::stoi(match[1]);
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {  // it exited (a bad flag, a failed recovery)
      pid_ = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::string ServerProcess::LogText() const {
  std::ifstream log(log_path_);
  std::stringstream text;
  text << log.rdbuf();
  return text.str();
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (waitpid(pid_, &status, WNOHANG) != pid_) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return status;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  unlink(log_path_.c_str());
}

}  // namespace rta::bench
