#include "tests/support/server_process.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "analytics.grpc.pb.h"

namespace rta::testing {

double MetricTotal(const std::string& address, const std::string& metric) {
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::MetricsQuery query;
  query.add_metric_types(metric);
  query.add_windows(analytics::WINDOW_TOTAL);
  analytics::MetricsSnapshot snapshot;
  if (!stub->GetMetrics(&context, query, &snapshot).ok() || snapshot.metrics_size() != 1) {
    return -1;
  }
  return snapshot.metrics(0).value();
}

namespace {

// Binds 127.0.0.1:port (0: any) and lets it go; the port bound, or 0 when the bind failed.
int BindLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t length = sizeof address;
  int bound = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    bound = ntohs(address.sin_port);
  }
  ::close(fd);
  return bound;
}

}  // namespace

// Outside the kernel's ephemeral range (net.ipv4.ip_local_port_range), not from it: the kernel
// hands ports of that range to every bind(0) and connect() on the machine, so a port taken
// from it can go to another test's client or server before our server binds it (CI saw
// "Address already in use" so once the NATS tests ran beside the rest of the suite). Outside
// the range only another pick like this one can collide, which the random choice and the bind
// check make rare. The larger span of [10000, low) and (high, 65535] is used, so a machine whose
// range starts low (some containers use 1024-65535) still gets ports outside it when it can.
//
// A port is never handed out twice by one process: a test picks all its ports before it starts
// the servers that bind them, and a killed server's port, free for a moment, must not go to the
// next pick while the test means to restart the server on it. Thread-safe.
int FreeLoopbackPort() {
  int ephemeral_low = 32768;
  int ephemeral_high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low >> ephemeral_high;
  constexpr int kLowest = 10000;
  constexpr int kHighest = 65535;
  const int below = ephemeral_low - kLowest;
  const int above = kHighest - ephemeral_high;
  int first = kLowest;
  int last = ephemeral_low - 1;
  if (above > below) {
    first = ephemeral_high + 1;
    last = kHighest;
  }
  if (last - first + 1 < 1000) {  // no room outside: anywhere, still checked and never repeated
    first = 1024;
    last = kHighest;
  }
  static std::mutex mutex;
  static std::set<int> handed_out;
  std::lock_guard<std::mutex> lock(mutex);
  thread_local std::mt19937 random(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<int> pick(first, last);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = pick(random);
    if (handed_out.count(port) == 0 && BindLoopback(port) == port) {
      handed_out.insert(port);
      return port;
    }
  }
  return 0;
}

std::string ServerProcess::DefaultBinary() {
  if (const char* env = std::getenv("RTA_SERVER_BINARY"); env != nullptr && *env != '\0') {
    return env;
  }
#ifdef RTA_SERVER_BINARY
  return RTA_SERVER_BINARY;
#else
  return "analytics_server";
#endif
}

ServerProcess::ServerProcess(std::vector<std::string> args, std::string binary,
                             std::chrono::seconds start_limit) {
  char path[] = "/tmp/rta_test_server_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return;
  log_path_ = path;
  bool has_listen = false;
  bool has_metrics = false;
  bool has_data_dir = false;
  bool has_http = false;
  for (const std::string& arg : args) {
    has_http |= arg.rfind("--http-listen", 0) == 0;
    has_listen |= arg.rfind("--listen", 0) == 0;
    has_metrics |= arg.rfind("--metrics-listen", 0) == 0;
    has_data_dir |= arg.rfind("--data-dir", 0) == 0;
  }
  std::vector<std::string> argv_storage = {binary};
  // Memory-only unless the test names a data directory: tests run in parallel from one
  // working directory, and the default one would be shared (the second server refuses it).
  if (!has_data_dir) argv_storage.insert(argv_storage.end(), {"--data-dir", ""});
  if (!has_listen) argv_storage.insert(argv_storage.end(), {"--listen", "127.0.0.1:0"});
  if (!has_metrics) argv_storage.insert(argv_storage.end(), {"--metrics-listen", ""});
  if (!has_http) argv_storage.insert(argv_storage.end(), {"--http-listen", "127.0.0.1:0"});
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    dup2(fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fd);
  const std::regex listening(R"(event=listening .*port=(\d+))");
  const std::regex metrics(R"(event=metrics_listening .*port=(\d+))");
  const std::regex http(R"(event=http_listening .*port=(\d+))");
  const auto deadline = std::chrono::steady_clock::now() + start_limit;
  while (std::chrono::steady_clock::now() < deadline && port_ == 0) {
    std::istringstream log(Log());
    std::string line;
    std::smatch match;
    while (std::getline(log, line)) {
      if (std::regex_search(line, match, listening)) port_ = std::stoi(match[1]);
      if (std::regex_search(line, match, metrics)) metrics_port_ = std::stoi(match[1]);
      if (std::regex_search(line, match, http)) http_port_ = std::stoi(match[1]);
    }
    if (port_ == 0) {
      if (WaitForExit(std::chrono::milliseconds(20))) break;  // it refused to start
    }
  }
  if (port_ != 0 && !has_metrics) return;
  // The metrics line follows the listening line; give it a moment when it was asked for.
  for (int i = 0; i < 100 && port_ != 0 && metrics_port_ == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::istringstream log(Log());
    std::string line;
    std::smatch match;
    while (std::getline(log, line)) {
      if (std::regex_search(line, match, metrics)) metrics_port_ = std::stoi(match[1]);
    }
  }
}

ServerProcess::~ServerProcess() {
  if (running()) {
    // An orderly stop first (the default shutdown grace is 5 s); a server that does not stop is
    // killed rather than left to hang the test.
    kill(pid_, SIGTERM);
    if (!WaitForExit(std::chrono::seconds(15))) {
      kill(pid_, SIGKILL);
      WaitForExit(std::chrono::seconds(10));
    }
  }
  if (!log_path_.empty()) unlink(log_path_.c_str());
}

void ServerProcess::Signal(int signal_number) const {
  if (running()) kill(pid_, signal_number);
}

std::optional<int> ServerProcess::WaitForExit(std::chrono::milliseconds timeout) {
  if (exit_status_ || pid_ <= 0) return exit_status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_status_ = status;
      return exit_status_;
    }
    if (done < 0 || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

uint64_t ServerProcess::RssBytes() const {
  if (!running()) return 0;
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "wait status " + std::to_string(status);
}

}  // namespace rta::testing
