#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace rta::bench {

// CPU time and resident memory of another process, from /proc/<pid>/stat and /proc/<pid>/status.
struct ProcessSample {
  double cpu_seconds = 0;  // user + system
  double cpu_user_seconds = 0;  // of which user (the rest is the kernel's, mostly TCP)
  uint64_t rss_bytes = 0;
  uint64_t rss_anon_bytes = 0;  // of which anonymous (heap, stacks); the rest is mapped files
};
ProcessSample SampleProcess(pid_t pid);

// Bytes the process caused to be written to storage so far (/proc/<pid>/io write_bytes).
uint64_t WriteBytes(pid_t pid);

// The analytics_server under test: started as a separate process on a free loopback port and
// stopped with SIGTERM on destruction.
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, int tick_ms, const std::string& extra_flags = "");
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const { return port_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  // Prometheus port when started with --metrics-listen 127.0.0.1:0 (0: none).
  int metrics_port() const { return metrics_port_; }
  // HTTP port when started with --http-listen 127.0.0.1:0 (0: none; its line comes before
  // event=listening).
  int http_port() const { return http_port_; }
  // From the fork to the `event=listening` line in its log (polled every 2 ms).
  double startup_seconds() const { return startup_seconds_; }
  // Its log (stderr) so far.
  std::string LogText() const;
  // Sends `signal` and waits for the process to exit (SIGKILL after 30 s). Returns its status.
  int Stop(int signal);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
  double startup_seconds_ = 0;
  std::string log_path_;
};

}  // namespace rta::bench
