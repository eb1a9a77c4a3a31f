#include "clients/common/client_channel.h"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

#include "clients/common/flags.h"

namespace rta::client {
namespace {

struct HostPort {
  std::string host;  // without brackets
  std::string port;
};

bool ParseHostPort(const std::string& address, HostPort* out) {
  std::string host;
  std::string port;
  if (!address.empty() && address.front() == '[') {  // [v6]:port
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return false;
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || address.find(':') != colon) return false;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return false;
  }
  *out = {host, port};
  return true;
}

bool IsIpv4(const std::string& host) {
  in_addr address;
  return inet_pton(AF_INET, host.c_str(), &address) == 1;
}

bool IsIpv6(const std::string& host) {
  in6_addr address;
  return inet_pton(AF_INET6, host.c_str(), &address) == 1;
}

// The gRPC target for the servers: one address as it is (DNS resolves it; round_robin then
// spreads calls over every record), several IP literals as an ipv4:/ipv6: address list.
bool BuildTarget(const std::vector<std::string>& servers, std::string* target, std::string* error) {
  if (servers.empty()) {
    *error = "no --server given";
    return false;
  }
  std::vector<HostPort> parsed;
  for (const std::string& server : servers) {
    // Targets with a scheme (dns:///, unix:, ipv4:) are the user's to get right.
    if (servers.size() == 1 && server.find(":/") != std::string::npos) {
      *target = server;
      return true;
    }
    HostPort host_port;
    if (!ParseHostPort(server, &host_port)) {
      *error = "bad server address \"" + server + "\": expected HOST:PORT, e.g. 127.0.0.1:50051";
      return false;
    }
    if (host_port.host == "localhost") host_port.host = "127.0.0.1";
    parsed.push_back(host_port);
  }
  if (parsed.size() == 1) {
    *target = servers.front();
    return true;
  }
  const bool all_v4 =
      std::all_of(parsed.begin(), parsed.end(), [](const HostPort& p) { return IsIpv4(p.host); });
  const bool all_v6 =
      std::all_of(parsed.begin(), parsed.end(), [](const HostPort& p) { return IsIpv6(p.host); });
  if (!all_v4 && !all_v6) {
    *error =
        "several servers must all be IPv4 or all IPv6 literals (or localhost); for host names, "
        "give one name whose DNS records list every server";
    return false;
  }
  *target = all_v4 ? "ipv4:" : "ipv6:";
  for (size_t i = 0; i < parsed.size(); ++i) {
    if (i > 0) *target += ',';
    *target += all_v4 ? parsed[i].host + ":" + parsed[i].port
                      : "[" + parsed[i].host + "]:" + parsed[i].port;
  }
  return true;
}

// A token may travel in plaintext to these: it never leaves the machine.
bool IsLoopbackServer(const std::string& server) {
  std::string host = server.substr(0, server.rfind(':'));
  if (host.starts_with("dns:///")) host = host.substr(7);
  if (host == "localhost" || host == "[::1]") return true;
  in_addr address{};
  return ::inet_pton(AF_INET, host.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

bool ReadPem(const std::string& path, const char* what, std::string* text, std::string* error) {
  std::ifstream file(path);
  std::stringstream pem;
  if (!file || !(pem << file.rdbuf())) {
    *error = std::string("cannot read the ") + what + " file " + path;
    return false;
  }
  *text = pem.str();
  return true;
}

}  // namespace

const std::vector<std::string>& ConnectionValueFlags() {
  static const std::vector<std::string> flags = {
      "server", "token", "token-file", "tls-ca", "tls-server-name", "tls-cert", "tls-key"};
  return flags;
}

const std::vector<std::string>& ConnectionSwitches() {
  static const std::vector<std::string> switches = {"insecure"};
  return switches;
}
const char kConnectionHelp[] =
    R"(  --server HOST:PORT    server address, default 127.0.0.1:50051; repeat it (or give a comma
                        list) to balance over several servers (round_robin)
  --token TOKEN         bearer token sent as "authorization: Bearer TOKEN"
  --token-file FILE     read the token from FILE's first line (analytics_server --init
                        writes DATA_DIR/admin.token)
  --tls-ca FILE         connect with TLS, trusting the PEM roots in FILE
  --tls-server-name N   the name the server's certificate must carry (default: the host)
  --tls-cert FILE       client certificate for mutual TLS (PEM), with --tls-key FILE
  --insecure            send the token even in plaintext to a server beyond loopback
)";

void ReadConnectionFlags(Flags& flags, ChannelOptions* options) {
  std::vector<std::string> servers;
  for (const std::string& value : flags.All("server")) {
    std::stringstream list(value);
    for (std::string server; std::getline(list, server, ',');) {
      if (!server.empty()) servers.push_back(server);
    }
  }
  if (!servers.empty()) options->servers = servers;
  std::string error;
  if (!ResolveToken(flags.String("token"), flags.String("token-file"), &options->token, &error)) {
    flags.Fail(error);
  }
  options->allow_plaintext_token = flags.Has("insecure");
  options->tls_ca_file = flags.String("tls-ca");
  options->tls_server_name = flags.String("tls-server-name");
  options->tls_cert_file = flags.String("tls-cert");
  options->tls_key_file = flags.String("tls-key");
}

bool ResolveToken(const std::string& token, const std::string& token_file, std::string* out,
                  std::string* error) {
  if (!token.empty() && !token_file.empty()) {
    *error = "--token and --token-file: give one";
    return false;
  }
  if (token_file.empty()) {
    *out = token;
    return true;
  }
  std::ifstream file(token_file);
  std::string line;
  if (!file || !std::getline(file, line)) {
    *error = "cannot read the token file " + token_file;
    return false;
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) {
    *error = "the token file " + token_file + " is empty";
    return false;
  }
  *out = line;
  return true;
}

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options, std::string* error) {
  std::string target;
  if (!BuildTarget(options.servers, &target, error)) return nullptr;
  if (!options.token.empty() && options.tls_ca_file.empty() && !options.allow_plaintext_token) {
    for (const std::string& server : options.servers) {
      if (IsLoopbackServer(server)) continue;
      *error = "refusing to send the token in plaintext to " + server +
               " (beyond loopback): give --tls-ca for TLS, or --insecure to send it anyway";
      return nullptr;
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments arguments;
  const bool tls = !options.tls_ca_file.empty() || !options.tls_cert_file.empty();
  if (!tls && (!options.tls_server_name.empty() || !options.tls_key_file.empty())) {
    *error = "--tls-server-name and --tls-key go with --tls-ca (or --tls-cert)";
    return nullptr;
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    *error = "--tls-cert and --tls-key go together";
    return nullptr;
  }
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if ((!options.tls_ca_file.empty() &&
         !ReadPem(options.tls_ca_file, "TLS CA", &ssl.pem_root_certs, error)) ||
        (!options.tls_cert_file.empty() &&
         (!ReadPem(options.tls_cert_file, "TLS client certificate", &ssl.pem_cert_chain, error) ||
          !ReadPem(options.tls_key_file, "TLS client key", &ssl.pem_private_key, error)))) {
      return nullptr;
    }
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      arguments.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  arguments.SetLoadBalancingPolicyName("round_robin");
  // Reconnect quickly after a server restart instead of gRPC's default of up to 2 minutes;
  // our own retry loop paces the calls.
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  // Keepalive pings notice a server or network path that died without a reset (a dashboard
  // would otherwise show "connected" for as long as TCP takes to give up). Every 20 s, also
  // while the client sends nothing (a subscription only receives); the server accepts pings
  // 10 s apart or more.
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20'000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(target, credentials, arguments);
}

void AddCredentials(const ChannelOptions& options, grpc::ClientContext* context) {
  if (!options.token.empty()) context->AddMetadata("authorization", "Bearer " + options.token);
}

std::string DescribeServers(const ChannelOptions& options) {
  std::string text;
  for (const std::string& server : options.servers) {
    if (!text.empty()) text += ", ";
    text += server;
  }
  return text;
}

const char* StatusCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const auto index = static_cast<size_t>(code);
  return index < std::size(kNames) ? kNames[index] : "UNKNOWN";
}

bool IsRetryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:  // by the server, e.g. while it shuts down
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

}  // namespace rta::client
