#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace rta::testing {

// A TCP proxy on an ephemeral 127.0.0.1 port that forwards every connection to 127.0.0.1:
// target_port and cuts it (closes both sides at once, no goodbye) once it has carried a
// random number of bytes, both directions together, drawn from [min_bytes, max_bytes] with a
// seeded generator: a network that keeps breaking long streams, reproducibly.
//
// Bounded: at most max_connections are accepted over its life (later ones are closed at once
// and counted in refused()); each has one relay thread, which ends when either side closes,
// at the cut, or when the proxy is destroyed. The destructor closes everything and joins every
// thread. The counters are thread-safe; the rest is used from the test's thread.
class CuttingProxy {
 public:
  struct Options {
    int target_port = 0;
    size_t min_bytes = 200 * 1024;
    size_t max_bytes = 900 * 1024;
    uint64_t seed = 1;
    int max_connections = 1'000;
  };

  explicit CuttingProxy(Options options);
  ~CuttingProxy();
  CuttingProxy(const CuttingProxy&) = delete;
  CuttingProxy& operator=(const CuttingProxy&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  uint64_t connections() const { return connections_.load(); }
  uint64_t cuts() const { return cuts_.load(); }
  uint64_t refused() const { return refused_.load(); }
  uint64_t bytes() const { return bytes_.load(); }

 private:
  void Accept();
  void Relay(int client, int upstream, size_t budget);

  const Options options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> connections_{0}, cuts_{0}, refused_{0}, bytes_{0};
  std::mt19937_64 rng_;  // used by the accept thread only
  std::mutex mutex_;
  std::vector<std::thread> relays_;  // guarded by mutex_
  std::thread acceptor_;
};

}  // namespace rta::testing
