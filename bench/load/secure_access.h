#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace rta::bench {

// The server as it faces a network (README "Access"): TLS with a throwaway certificate and API
// tokens required, and the clients' matching credentials. For the `access` scenario, which
// measures what TLS and tokens cost on ingest and fan-out against plaintext in the same run.
class SecureAccess {
 public:
  // Makes a self-signed EC P-256 certificate for 127.0.0.1 and localhost with the openssl
  // command line, in a fresh directory under /tmp (removed on destruction). Throws when openssl
  // fails.
  SecureAccess();
  ~SecureAccess();
  SecureAccess(const SecureAccess&) = delete;
  SecureAccess& operator=(const SecureAccess&) = delete;

  // analytics_server flags: --tls-cert and --tls-key.
  std::string ServerFlags() const;

  // On a server just started with ServerFlags() and no user yet (open, `--auth auto`): creates
  // user "bench" (role admin) and a token for it over UserService.UpdateUser, which makes
  // tokens required from then on. Returns credentials that carry TLS and
  // "authorization: Bearer <token>" on every call. Throws when the server refuses.
  std::shared_ptr<grpc::ChannelCredentials> Bootstrap(const std::string& address) const;

 private:
  std::string dir_;
};

}  // namespace rta::bench
