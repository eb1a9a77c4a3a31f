#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

namespace rta::auth {

// The server's TLS material (--tls-cert, --tls-key, optional --tls-client-ca for mutual TLS),
// reloadable on SIGHUP without dropping a connection.
//
// How the reload works: gRPC 1.51's FileWatcherCertificateProvider re-reads its files every
// refresh interval (1 s here) and hands new ones to new handshakes; established connections
// keep theirs. It must not watch the operator's files directly: an editor or a copy caught half
// written, or a key that does not match the certificate, would go live by itself. So the files
// are checked (PEM parses, the key matches the certificate, the CA file holds a certificate)
// and then copied into a staging directory of our own (mode 0700, files 0600, each replaced by
// rename), and the provider watches those copies. Start and Reload() (SIGHUP) are the only
// moments the staged copies change; a Reload() whose files fail a check changes nothing and
// says why.
//
// Thread-safety: Reload() from one thread at a time (the signal thread).
class TlsFiles {
 public:
  struct Paths {
    std::string cert;       // PEM certificate chain
    std::string key;        // PEM private key
    std::string client_ca;  // PEM roots for client certificates; "" = no client certificates
  };

  // Checks and stages the files in `stage_dir` (created if missing); nullptr with *error
  // naming the file and the problem.
  static std::unique_ptr<TlsFiles> Create(const Paths& paths, const std::string& stage_dir,
                                          std::string* error);
  // The same checks as Create, without staging: the server runs them before its recovery, so
  // that a bad file is reported at once rather than after replaying the event log.
  static bool Check(const Paths& paths, std::string* error);
  ~TlsFiles();

  // Server credentials reading the staged files: TLS, and with a client CA, mutual TLS
  // (a client without a certificate signed by it fails the handshake).
  std::shared_ptr<grpc::ServerCredentials> Credentials();
  // Re-reads the operator's files; false with *error (and the old material kept) when a check
  // fails. New handshakes use the new material within the provider's refresh interval.
  bool Reload(std::string* error);
  // The subject of the staged certificate, for logs ("CN=analytics.example.com").
  const std::string& subject() const { return subject_; }
  // The checked PEM texts now staged (the HTTP port builds its own TLS context from them).
  struct Material {
    std::string cert;
    std::string key;
    std::string client_ca;  // "" without client certificates
  };
  const Material& material() const { return material_; }

 private:
  TlsFiles(Paths paths, std::string stage_dir)
      : paths_(std::move(paths)), stage_dir_(std::move(stage_dir)) {}
  bool Stage(std::string* error);

  const Paths paths_;
  const std::string stage_dir_;
  std::string subject_;
  Material material_;
  std::shared_ptr<void> provider_;  // grpc::experimental::FileWatcherCertificateProvider
};

}  // namespace rta::auth
