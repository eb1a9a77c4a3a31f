#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace rta::testing {

// A NATS cluster with JetStream on loopback for the cluster tests (issue 16): `size`
// nats-server processes (Debian's /usr/sbin/nats-server, or $RTA_NATS_SERVER), each with its
// own client port, cluster port, monitoring port (HTTP: /varz, /jsz), JetStream store in a
// temporary directory and a config that routes to the others (one server: standalone
// JetStream). The constructor waits (up to 20 s) until every server accepts client
// connections, and starts again on fresh ports (up to 3 times) when a server exits first,
// which is what nats-server does when another process took one of its ports. JetStream's own
// leader election comes after, and clients retry until it is done.
// Servers get SIGKILL if the test process dies (PR_SET_PDEATHSIG); the destructor kills them
// and removes their directories.
//
// Not thread-safe; use from the test's thread.
class NatsCluster {
 public:
  // `binary`: the nats-server to run; empty for the default above.
  explicit NatsCluster(int size = 3, std::string binary = "");
  ~NatsCluster();
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  bool ok() const { return ok_; }
  // Why the last start failed (also written to stderr): the server, its exit, its log's end.
  const std::string& error() const { return error_; }
  // nats://127.0.0.1:PORT of every server, or of one.
  std::vector<std::string> urls() const;
  std::string url(int server) const;

  void Kill(int server);   // SIGKILL, waited for
  void Stop(int server);   // SIGTERM (lame duck), waited for (SIGKILL after 15 s)
  bool Start(int server);  // again, with its store: true once it accepts connections
  bool running(int server) const { return servers_[server].pid > 0; }
  pid_t pid(int server) const { return servers_[server].pid; }  // 0 when not running
  int monitor_port(int server) const { return servers_[server].monitor_port; }
  std::string Log(int server) const;

 private:
  struct Server {
    int client_port = 0;
    int cluster_port = 0;
    int monitor_port = 0;
    std::string config_path;
    std::string log_path;
    pid_t pid = 0;
  };
  void WriteConfigs();  // fresh ports for every server, and their configs
  void Wait(int server, int timeout_ms);
  std::string LogTail(int server) const;

  std::string binary_;
  std::string dir_;
  std::vector<Server> servers_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace rta::testing
