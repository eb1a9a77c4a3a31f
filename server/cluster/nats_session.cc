#include "server/cluster/nats_session.h"

#include <chrono>
#include <thread>

namespace rta::cluster {

std::unique_ptr<NatsSession> NatsSession::Connect(const std::vector<std::string>& servers,
                                                  int js_wait_ms, std::string* error) {
  natsOptions* options = nullptr;
  natsOptions_Create(&options);
  std::vector<const char*> urls;
  for (const std::string& server : servers) urls.push_back(server.c_str());
  natsOptions_SetServers(options, urls.data(), static_cast<int>(urls.size()));
  natsOptions_SetMaxReconnect(options, -1);
  natsOptions_SetReconnectWait(options, 250);
  natsOptions_SetTimeout(options, 2000);
  natsConnection* connection = nullptr;
  const natsStatus status = natsConnection_Connect(&connection, options);
  natsOptions_Destroy(options);
  if (status != NATS_OK) {
    *error = "cannot connect to NATS at " + (servers.empty() ? "" : servers[0]) + ": " +
             natsStatus_GetText(status);
    return nullptr;
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = js_wait_ms;
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, connection, &js_options);
  return std::unique_ptr<NatsSession>(new NatsSession(connection, js));
}

NatsSession::~NatsSession() {
  jsCtx_Destroy(js_);
  natsConnection_Destroy(connection_);
}

uint64_t StableHash(std::string_view text, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (const char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

natsStatus DirectGetNext(jsCtx* js, const std::string& stream, const std::string& subject,
                         uint64_t sequence, NatsMsgPtr* msg) {
  jsDirectGetMsgOptions get;
  jsDirectGetMsgOptions_Init(&get);
  get.Sequence = sequence;
  get.NextBySubject = subject.c_str();
  natsMsg* raw = nullptr;
  const natsStatus status = js_DirectGetMsg(&raw, js, stream.c_str(), nullptr, &get);
  if (status == NATS_OK) msg->reset(raw);
  return status;
}

bool ForEachBucketEntry(jsCtx* js, const std::string& bucket,
                        const std::function<void(std::string_view key, std::string_view value)>& fn,
                        std::string* why) {
  const std::string stream = "KV_" + bucket;
  const std::string prefix = "$KV." + bucket + ".";
  const std::string all = prefix + ">";
  for (uint64_t next = 1;;) {
    NatsMsgPtr msg;
    const natsStatus status = DirectGetNext(js, stream, all, next, &msg);
    if (status == NATS_NOT_FOUND) return true;
    if (status != NATS_OK) {
      *why = "reading the key-value bucket " + bucket + ": " + DescribeNats(status);
      return false;
    }
    next = natsMsg_GetSequence(msg.get()) + 1;
    const char* operation = nullptr;  // set on deletes and purges only
    if (natsMsgHeader_Get(msg.get(), "KV-Operation", &operation) == NATS_OK) continue;
    const std::string_view subject = natsMsg_GetSubject(msg.get());
    if (subject.size() <= prefix.size()) continue;
    const int length = natsMsg_GetDataLength(msg.get());
    fn(subject.substr(prefix.size()),
       std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(std::max(length, 0))));
  }
}

kvStore* OpenBucket(jsCtx* js, const std::string& bucket, int ttl_ms, int replicas,
                    std::chrono::steady_clock::time_point deadline, std::string* error) {
  for (;;) {
    kvStore* kv = nullptr;
    natsStatus status = js_KeyValue(&kv, js, bucket.c_str());
    if (status == NATS_OK) return kv;
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = bucket.c_str();
    config.History = 1;
    // Nanoseconds: nats.c 3.4 hands it to the stream as MaxAge as it is.
    config.TTL = static_cast<int64_t>(ttl_ms) * 1'000'000;
    config.Replicas = replicas;
    config.StorageType = js_FileStorage;
    status = js_CreateKeyValue(&kv, js, &config);
    if (status == NATS_OK) return kv;
    if (std::chrono::steady_clock::now() >= deadline) {
      *error = "key-value bucket " + bucket + " not available: " + DescribeNats(status) + ": " +
               nats_GetLastError(nullptr);
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DescribeNats(natsStatus status, jsErrCode code) {
  std::string text = natsStatus_GetText(status);
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  return text;
}

std::string HexKey(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out.push_back(kDigits[static_cast<uint8_t>(c) >> 4]);
    out.push_back(kDigits[static_cast<uint8_t>(c) & 0xf]);
  }
  return out;
}

bool UnhexKey(std::string_view hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  bytes->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = digit(hex[i]);
    const int low = digit(hex[i + 1]);
    if (high < 0 || low < 0) return false;
    bytes->push_back(static_cast<char>(high * 16 + low));
  }
  return true;
}

std::unique_ptr<AsyncSubscription> AsyncSubscription::Subscribe(natsConnection* connection,
                                                                const std::string& subject,
                                                                natsMsgHandler handler,
                                                                void* closure, std::string* why) {
  std::unique_ptr<AsyncSubscription> subscription(new AsyncSubscription());
  natsStatus status =
      natsConnection_Subscribe(&subscription->sub_, connection, subject.c_str(), handler, closure);
  if (status == NATS_OK) {
    status = natsSubscription_SetOnCompleteCB(subscription->sub_, &AsyncSubscription::OnComplete,
                                              subscription.get());
  }
  if (status != NATS_OK) {
    *why = "subscribing to " + subject + ": " + DescribeNats(status);
    return nullptr;  // the destructor unsubscribes a subscription made before the failure
  }
  return subscription;
}

void AsyncSubscription::OnComplete(void* self) {
  auto* subscription = static_cast<AsyncSubscription*>(self);
  std::lock_guard lock(subscription->mu_);
  subscription->closed_ = true;
  subscription->closed_cv_.notify_all();
}

AsyncSubscription::~AsyncSubscription() {
  if (sub_ == nullptr) return;
  if (natsSubscription_Unsubscribe(sub_) == NATS_OK) {
    // Bounded: nats.c calls OnComplete once the handler has returned; a handler stuck longer is
    // a bug of the handler's, not a reason to hang the process at shutdown.
    std::unique_lock lock(mu_);
    closed_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return closed_; });
  }
  natsSubscription_Destroy(sub_);
}

}  // namespace rta::cluster
