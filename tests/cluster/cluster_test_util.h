#pragma once

// What the binary cluster tests share (tests/cluster/cluster_*_test.cc): child processes run
// beside the nodes, their output, and the nodes' logs and metrics.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"

namespace rta::testing {

inline std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : ",") + part;
  return out;
}

// A client binary run in the background with stdout and stderr to files; FAILs when it cannot
// be forked (a pid of -1 must never reach kill(), where it means every process of ours).
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& out,
                   const std::string& err) {
  const pid_t pid = fork();
  if (pid < 0) FAIL("fork for " << argv.front() << ": " << std::strerror(errno));
  if (pid == 0) {
    dup2(open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    dup2(open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Starts a node with `args`, whose --listen is set to 127.0.0.1:0: the kernel picks a free port
// as the node binds it, so that no other process can take the port first, as it can take one
// picked beforehand on a busy machine. The address the node got is written back into `args`, so
// that a restart with them comes back on it. FAILs with the node's log when it did not start.
inline std::unique_ptr<ServerProcess> StartNode(
    std::vector<std::string>& args, std::chrono::seconds start_limit = std::chrono::seconds(20)) {
  size_t listen = 0;
  while (listen + 1 < args.size() && args[listen] != "--listen") ++listen;
  if (listen + 1 >= args.size()) {
    listen = args.size();
    args.insert(args.end(), {"--listen", ""});
  }
  args[listen + 1] = "127.0.0.1:0";
  auto node = std::make_unique<ServerProcess>(args, ServerProcess::DefaultBinary(), start_limit);
  if (!node->listening()) FAIL("a node did not start:\n" << node->Log());
  args[listen + 1] = node->address();
  return node;
}

// Waits for a child; its wait status, or FAILs after `limit`.
inline int WaitChild(pid_t pid, std::chrono::seconds limit, const std::string& what) {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      FAIL(what << " did not finish within " << limit.count() << " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return status;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The start of a long text (a reporter's log names every refused event).
inline std::string Head(const std::string& text, size_t limit = 4000) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

// The end of a node's log: enough to see why, short enough to read in a CI report.
inline std::string LogTail(const ServerProcess& node) {
  const std::string log = node.Log();
  return log.size() <= 6000 ? log : "..." + log.substr(log.size() - 6000);
}

// A Prometheus sample of a node (its /metrics), or -1.
inline double Scrape(const ServerProcess& node, const std::string& series) {
  if (!node.running()) return -1;
  const double value = PrometheusValue(HttpGet(node.metrics_port(), "/metrics"), series);
  return std::isnan(value) ? -1 : value;
}

// Milliseconds since `start`.
inline long long MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace rta::testing
