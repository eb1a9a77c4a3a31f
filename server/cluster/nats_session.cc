#include "server/cluster/nats_session.h"

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

std::string DescribeNats(natsStatus status, jsErrCode code) {
  std::string text = natsStatus_GetText(status);
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  return text;
}

}  // namespace rta::cluster
