#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace rta::bench {

// CPU time and resident memory of another process, from /proc/<pid>/stat and /proc/<pid>/status.
struct ProcessSample {
  double cpu_seconds = 0;  // user + system
  uint64_t rss_bytes = 0;
  uint64_t rss_anon_bytes = 0;  // of which anonymous (heap, stacks); the rest is mapped files
};
ProcessSample SampleProcess(pid_t pid);

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

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

}  // namespace rta::bench
