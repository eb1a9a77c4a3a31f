#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

namespace rta::client {

// How a command-line client reaches the server(s); shared by event_reporter and
// dashboard_client so both take the same --server / --token / --tls-ca flags.
struct ChannelOptions {
  // HOST:PORT each. Several are balanced with gRPC's round_robin policy, one call at a time
  // (each stream goes to the next ready server; a server that is down is skipped).
  std::vector<std::string> servers = {"127.0.0.1:50051"};
  std::string tls_ca_file;      // PEM roots; empty: plaintext
  std::string tls_server_name;  // the name the server's certificate must carry; "": the host
  std::string tls_cert_file;    // PEM client certificate (mutual TLS), with tls_key_file
  std::string tls_key_file;
  std::string token;  // sent as "authorization: Bearer <token>"; empty: none
  // A token travels in plaintext only to loopback servers unless this is set (--insecure).
  bool allow_plaintext_token = false;
};

// The token from --token or --token-file (its first line; the file is what
// `analytics_server --init` writes), or false with *error naming the problem. Both given: error.
bool ResolveToken(const std::string& token, const std::string& token_file, std::string* out,
                  std::string* error);

// The connection flags every client takes (--server, --token, --token-file, --tls-ca,
// --tls-server-name, --tls-cert, --tls-key; the switch --insecure), for Flags (functions, so
// that other files' static initializers may use them), and their help lines. ReadConnectionFlags
// fills `options`, recording errors in `flags`.
const std::vector<std::string>& ConnectionValueFlags();
const std::vector<std::string>& ConnectionSwitches();
extern const char kConnectionHelp[];
class Flags;
void ReadConnectionFlags(Flags& flags, ChannelOptions* options);

// The channel, or nullptr with the reason in *error (a malformed address, an unreadable CA
// file, a token that would go in plaintext beyond loopback). Does not connect: an unreachable
// server shows up on the first call.
std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options, std::string* error);

// Adds the bearer token (if any) to a call.
void AddCredentials(const ChannelOptions& options, grpc::ClientContext* context);

// The servers for messages, e.g. "127.0.0.1:50051" or "10.0.0.1:50051, 10.0.0.2:50051".
std::string DescribeServers(const ChannelOptions& options);

// "UNAVAILABLE", "DEADLINE_EXCEEDED", ...
const char* StatusCodeName(grpc::StatusCode code);

// Whether a call that failed with this code may succeed if tried again as it is.
bool IsRetryable(grpc::StatusCode code);

}  // namespace rta::client
