#pragma once

#include <nats/nats.h>

#include <memory>
#include <string>
#include <string_view>
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

// Owners of nats.c objects.
struct NatsMsgFree {
  void operator()(natsMsg* msg) const { natsMsg_Destroy(msg); }
};
using NatsMsgPtr = std::unique_ptr<natsMsg, NatsMsgFree>;
// Unsubscribes first: an ephemeral consumer is deleted at once, not after its inactivity
// threshold.
struct NatsSubscriptionFree {
  void operator()(natsSubscription* subscription) const {
    natsSubscription_Unsubscribe(subscription);
    natsSubscription_Destroy(subscription);
  }
};
using NatsSubscriptionPtr = std::unique_ptr<natsSubscription, NatsSubscriptionFree>;

// FNV-1a from `seed`, then splitmix64's finalizer: the same on every node, process and version,
// which rendezvous hashing (leases) and the partition of an event need. Not a cryptographic
// PRF: with a secret seed (the cluster's) a client cannot aim its session ids at one partition
// without knowing it, which is all the partitioning needs.
uint64_t StableHash(std::string_view text, uint64_t seed);

// Milliseconds since the Unix epoch (JetStream's timestamps are wall-clock).
int64_t WallClockMs();

// natsStatus text, with JetStream's error code when there is one.
std::string DescribeNats(natsStatus status, jsErrCode code = static_cast<jsErrCode>(0));

}  // namespace rta::cluster
