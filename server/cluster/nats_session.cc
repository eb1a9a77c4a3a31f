#include "server/cluster/nats_session.h"

#include <chrono>

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

}  // namespace rta::cluster
