#pragma once

#include <nats/nats.h>

#include <memory>
#include <string>
#include <vector>

namespace rta::cluster {

// One connection to the NATS cluster and its JetStream context, closed together (RAII).
// The connection reconnects forever (a lost NATS server is not a lost cluster: the client moves
// to another of `servers`), so a call on it fails for a while rather than for good.
//
// nats.c's connection and context are thread-safe: any thread may use them.
class NatsSession {
 public:
  // Connects to any of `servers` (nats://host:port). js_wait_ms bounds each JetStream API call
  // and publish acknowledgement. Null and *error when no server answers.
  static std::unique_ptr<NatsSession> Connect(const std::vector<std::string>& servers,
                                              int js_wait_ms, std::string* error);
  ~NatsSession();
  NatsSession(const NatsSession&) = delete;
  NatsSession& operator=(const NatsSession&) = delete;

  natsConnection* connection() const { return connection_; }
  jsCtx* js() const { return js_; }

 private:
  NatsSession(natsConnection* connection, jsCtx* js) : connection_(connection), js_(js) {}
  natsConnection* const connection_;
  jsCtx* const js_;
};

// natsStatus text, with JetStream's error code when there is one.
std::string DescribeNats(natsStatus status, jsErrCode code = static_cast<jsErrCode>(0));

}  // namespace rta::cluster
