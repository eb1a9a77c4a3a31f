#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rta::testing {

// The real analytics_server binary, started as a child process for black-box tests (kill -9,
// SIGTERM, RSS, exit status): `binary --listen 127.0.0.1:0 --metrics-listen '' --data-dir ''
// --http-listen 127.0.0.1:0 ARGS...` (an ARGS entry of --listen, --metrics-listen, --data-dir or
// --http-listen overrides the default:
// memory-only unless the test names a directory), stderr to a log file. The
// constructor waits up to `start_limit` (20 s) for the `event=listening` line. If the test process
// dies, the server gets SIGKILL too (PR_SET_PDEATHSIG); the destructor stops it if it still runs
// (SIGTERM, then SIGKILL after 15 s).
//
// Not thread-safe; use from the test's thread.
// A metric's WINDOW_TOTAL value from GetMetrics at `address` (plaintext, no token); -1 when it
// cannot be had.
double MetricTotal(const std::string& address, const std::string& metric = "events_total");

// A loopback port free right now (a restarted server must come back on the same one), outside
// the kernel's ephemeral range so that no other process's bind(0) or connect() takes it before
// the server binds it, and never the same one twice in a process; 0 if none could be had.
int FreeLoopbackPort();

class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args = {}, std::string binary = DefaultBinary(),
                         std::chrono::seconds start_limit = std::chrono::seconds(20));
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // The analytics_server this test build made (RTA_SERVER_BINARY), or $RTA_SERVER_BINARY.
  static std::string DefaultBinary();

  bool listening() const { return port_ > 0; }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }  // 0 when started with --http-listen ''

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

  void Signal(int signal_number) const;
  // Waits for the process to end; its wait status (see WIFEXITED etc.), or nullopt on timeout.
  std::optional<int> WaitForExit(std::chrono::milliseconds timeout);
  bool running() const { return pid_ > 0 && !exit_status_; }
  // Everything the server has written to stderr so far.
  std::string Log() const;
  // Resident set size now (VmRSS), bytes; 0 once the process is gone.
  uint64_t RssBytes() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
  std::optional<int> exit_status_;
  std::string log_path_;
};

// Describes a wait status in words ("exit 0", "killed by signal 6 (Aborted)").
std::string DescribeWaitStatus(int status);

}  // namespace rta::testing
