#include "tests/support/nats_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "tests/support/server_process.h"

namespace rta::testing {
namespace {

bool Accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

std::string DefaultBinary() {
  const char* env = std::getenv("RTA_NATS_SERVER");
  return env != nullptr && *env != '\0' ? env : "/usr/sbin/nats-server";
}

}  // namespace

NatsCluster::NatsCluster(int size, std::string binary)
    : binary_(binary.empty() ? DefaultBinary() : std::move(binary)) {
  char path[] = "/tmp/rta_nats_XXXXXX";
  if (mkdtemp(path) == nullptr) {
    error_ = std::string("mkdtemp: ") + std::strerror(errno);
    std::fprintf(stderr, "NatsCluster: %s\n", error_.c_str());
    return;
  }
  dir_ = path;
  servers_.resize(size);
  // A server that cannot bind a port exits at once ("address already in use"): another process
  // took one of the ports picked for it. Such a start is retried on fresh ports, from an empty
  // store, so that a collision costs a second rather than the test; the reason goes to stderr.
  constexpr int kAttempts = 3;
  for (int attempt = 1; attempt <= kAttempts && !ok_; ++attempt) {
    if (attempt > 1) {
      for (int i = 0; i < size; ++i) Kill(i);
      std::error_code ignored;
      for (const auto& entry : std::filesystem::directory_iterator(dir_, ignored)) {
        std::filesystem::remove_all(entry.path(), ignored);
      }
    }
    WriteConfigs();
    ok_ = true;
    for (int i = 0; i < size && ok_; ++i) ok_ = Start(i);
    if (!ok_) {
      std::fprintf(stderr, "NatsCluster: start %d of %d failed: %s\n", attempt, kAttempts,
                   error_.c_str());
    }
  }
}

void NatsCluster::WriteConfigs() {
  const int size = static_cast<int>(servers_.size());
  for (Server& server : servers_) {
    server.client_port = FreeLoopbackPort();
    server.cluster_port = FreeLoopbackPort();
    server.monitor_port = FreeLoopbackPort();
  }
  for (int i = 0; i < size; ++i) {
    Server& server = servers_[i];
    const std::string name = "n" + std::to_string(i);
    server.config_path = dir_ + "/" + name + ".conf";
    server.log_path = dir_ + "/" + name + ".log";
    std::ofstream config(server.config_path, std::ios::trunc);
    config << "server_name: " << name << "\n"
           << "listen: 127.0.0.1:" << server.client_port << "\n"
           << "http: 127.0.0.1:" << server.monitor_port
           << "\n"
           // Room for a group of records up to the server's batch limit (the default is 1 MB).
           << "max_payload: 8MB\n"
           << "jetstream {\n  store_dir: \"" << dir_ << "/" << name << "\"\n"
           << "  max_memory_store: 64MB\n  max_file_store: 1GB\n}\n";
    if (size == 1) continue;  // a standalone JetStream server (streams of one replica)
    config << "cluster {\n  name: rta_test\n  listen: 127.0.0.1:" << server.cluster_port
           << "\n  routes: [\n";
    for (int j = 0; j < size; ++j) {
      if (j != i) config << "    nats-route://127.0.0.1:" << servers_[j].cluster_port << "\n";
    }
    config << "  ]\n}\n";
  }
}

NatsCluster::~NatsCluster() {
  for (int i = 0; i < static_cast<int>(servers_.size()); ++i) Kill(i);
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::vector<std::string> NatsCluster::urls() const {
  std::vector<std::string> out;
  for (int i = 0; i < static_cast<int>(servers_.size()); ++i) out.push_back(url(i));
  return out;
}

std::string NatsCluster::url(int server) const {
  return "nats://127.0.0.1:" + std::to_string(servers_[server].client_port);
}

bool NatsCluster::Start(int index) {
  Server& server = servers_[index];
  if (server.pid > 0) return true;
  const std::string& binary = binary_;
  const pid_t parent = getpid();
  // fork() fails with EAGAIN when the machine is at its process or thread limit for a moment
  // (the suite runs servers in parallel); that is waited out, a little.
  for (int tries = 0; tries < 50; ++tries) {
    server.pid = fork();
    if (server.pid >= 0 || errno != EAGAIN) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (server.pid < 0) {
    error_ = "n" + std::to_string(index) + ": fork: " + std::strerror(errno);
    server.pid = 0;
    return false;
  }
  if (server.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    execl(binary.c_str(), binary.c_str(), "--config", server.config_path.c_str(), "--log",
          server.log_path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Accepts(server.client_port)) return true;
    int status = 0;
    if (waitpid(server.pid, &status, WNOHANG) == server.pid) {
      server.pid = 0;
      error_ = "n" + std::to_string(index) + " (" + binary + ") exited with " +
               DescribeWaitStatus(status) + " before it accepted connections; its log ends:\n" +
               LogTail(index);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  error_ = "n" + std::to_string(index) + " did not accept connections on port " +
           std::to_string(server.client_port) + " within 20 s; its log ends:\n" + LogTail(index);
  return false;
}

std::string NatsCluster::LogTail(int index) const {
  const std::string log = Log(index);
  constexpr size_t kTail = 1500;
  return log.size() <= kTail ? log : log.substr(log.size() - kTail);
}

void NatsCluster::Wait(int index, int timeout_ms) {
  Server& server = servers_[index];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(server.pid, nullptr, WNOHANG) == server.pid) {
      server.pid = 0;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(server.pid, SIGKILL);
  waitpid(server.pid, nullptr, 0);
  server.pid = 0;
}

void NatsCluster::Kill(int index) {
  if (servers_[index].pid <= 0) return;
  ::kill(servers_[index].pid, SIGKILL);
  Wait(index, 15'000);
}

void NatsCluster::Stop(int index) {
  if (servers_[index].pid <= 0) return;
  ::kill(servers_[index].pid, SIGTERM);
  Wait(index, 15'000);
}

std::string NatsCluster::Log(int index) const {
  std::ifstream in(servers_[index].log_path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace rta::testing
