#pragma once

#include <nats/nats.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
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

// FNV-1a from `seed`, then splitmix64's finalizer: the same on every node, process and version,
// which rendezvous hashing (leases) and the partition of an event need. Not a cryptographic
// PRF: with a secret seed (the cluster's) a client cannot aim its session ids at one partition
// without knowing it, which is all the partitioning needs.
uint64_t StableHash(std::string_view text, uint64_t seed);

// JetStream's direct get of the first message on `subject` at a stream sequence >= `sequence`
// (>= 1), answered by any of the stream's replicas (the stream needs AllowDirect). NATS_OK and
// *msg; NATS_NOT_FOUND when the replica that answered holds none (a follower may be a little
// behind its leader); another status when the request failed (a server gone, an election).
//
// Why gets and not a consumer: nats.c 3.4's ordered push consumers were seen to stop
// delivering after a NATS server was killed, without an error, a heartbeat reset or a pending
// count (docs/design/cluster.md). A get holds no state on any server and fails loudly.
natsStatus DirectGetNext(jsCtx* js, const std::string& stream, const std::string& subject,
                         uint64_t sequence, NatsMsgPtr* msg);

// Calls fn(key, value) for every key of the key-value bucket `bucket` that holds a value (not
// deleted or purged), reading the bucket's stream with direct gets from its first sequence:
// with history 1 that is one message per key. False and *why when a get fails. A replica a
// little behind its leader may miss the newest puts (the callers poll again).
//
// Why not kvStore_Keys: it reads through an ordered consumer, the kind DirectGetNext's comment
// says was seen to stop after a NATS server was killed; a lease round that could not list the
// members kept an old list, so a node restarted after that kill took no partitions (the
// three-node test, 2 runs in about 40).
bool ForEachBucketEntry(jsCtx* js, const std::string& bucket,
                        const std::function<void(std::string_view key, std::string_view value)>& fn,
                        std::string* why);

// Opens a key-value bucket (history 1, file storage, `replicas`; entries expire after ttl_ms,
// 0: never), creating it when missing. A new NATS cluster elects its JetStream leader first, so
// this retries until `deadline`. Null and *error then.
kvStore* OpenBucket(jsCtx* js, const std::string& bucket, int ttl_ms, int replicas,
                    std::chrono::steady_clock::time_point deadline, std::string* error);

// A subscription whose handler nats.c calls on a thread of its own, closed by the destructor,
// which returns only after the handler has returned for the last time (nats.c's on-complete
// callback): what the handler uses may be freed right after. Null from Subscribe and *why when
// subscribing failed.
class AsyncSubscription {
 public:
  static std::unique_ptr<AsyncSubscription> Subscribe(natsConnection* connection,
                                                      const std::string& subject,
                                                      natsMsgHandler handler, void* closure,
                                                      std::string* why);
  ~AsyncSubscription();
  AsyncSubscription(const AsyncSubscription&) = delete;
  AsyncSubscription& operator=(const AsyncSubscription&) = delete;

 private:
  AsyncSubscription() = default;
  static void OnComplete(void* self);

  natsSubscription* sub_ = nullptr;
  std::mutex mu_;
  std::condition_variable closed_cv_;
  bool closed_ = false;  // guarded by mu_
};

// Milliseconds since the Unix epoch (JetStream's timestamps are wall-clock).
int64_t WallClockMs();

// natsStatus text, with JetStream's error code when there is one.
std::string DescribeNats(natsStatus status, jsErrCode code = static_cast<jsErrCode>(0));

// A key-value bucket key that any bytes can name: their lowercase hex (JetStream keys take
// letters, digits and a few marks only), and back (false when `hex` is not such a key).
std::string HexKey(std::string_view bytes);
bool UnhexKey(std::string_view hex, std::string* bytes);

}  // namespace rta::cluster
