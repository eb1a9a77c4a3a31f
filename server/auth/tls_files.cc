#include "server/auth/tls_files.h"

#include <fcntl.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rta::auth {
namespace {

constexpr unsigned kRefreshSeconds = 1;

bool ReadFile(const std::string& path, const char* what, std::string* text, std::string* error) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    *error = what + std::string(" ") + path + ": is a directory";
    return false;
  }
  std::ifstream file(path, std::ios::binary);
  std::stringstream content;
  if (!file || !(content << file.rdbuf())) {
    *error = what + std::string(" ") + path + ": cannot read it";
    return false;
  }
  *text = content.str();
  return true;
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& text) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::unique_ptr<X509, X509Deleter> FirstCertificate(const std::string& pem) {
  auto bio = MemoryBio(pem);
  return std::unique_ptr<X509, X509Deleter>(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Writes `text` to dir/name through a temporary file and rename: a reader sees the old file or
// the new one, never a part.
bool WriteStaged(const std::string& dir, const std::string& name, const std::string& text,
                 std::string* error) {
  const std::string path = dir + "/" + name;
  const std::string temporary = path + ".new";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = "cannot write " + temporary + ": " + std::strerror(errno);
    return false;
  }
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    ::unlink(temporary.c_str());
    return false;
  }
  return true;
}

// The operator's files read and checked: the PEM texts and the certificate's subject.
struct Checked {
  TlsFiles::Material material;
  std::string subject;
};

bool ReadAndCheck(const TlsFiles::Paths& paths, Checked* out, std::string* error) {
  std::string cert, key, client_ca;
  if (!ReadFile(paths.cert, "tls_cert", &cert, error) ||
      !ReadFile(paths.key, "tls_key", &key, error) ||
      (!paths.client_ca.empty() &&
       !ReadFile(paths.client_ca, "tls_client_ca", &client_ca, error))) {
    return false;
  }
  auto certificate = FirstCertificate(cert);
  if (!certificate) {
    *error = "tls_cert " + paths.cert + ": no PEM certificate in it";
    return false;
  }
  auto key_bio = MemoryBio(key);
  std::unique_ptr<EVP_PKEY, KeyDeleter> private_key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!private_key) {
    *error =
        "tls_key " + paths.key + ": no PEM private key in it (an encrypted key is not supported)";
    return false;
  }
  if (X509_check_private_key(certificate.get(), private_key.get()) != 1) {
    *error = "tls_key " + paths.key + " does not match the certificate in " + paths.cert;
    return false;
  }
  if (!paths.client_ca.empty() && !FirstCertificate(client_ca)) {
    *error = "tls_client_ca " + paths.client_ca + ": no PEM certificate in it";
    return false;
  }
  char subject[256] = {};
  X509_NAME_oneline(X509_get_subject_name(certificate.get()), subject, sizeof subject);
  out->subject = subject;
  out->material = {std::move(cert), std::move(key), std::move(client_ca)};
  return true;
}

}  // namespace

std::unique_ptr<TlsFiles> TlsFiles::Create(const Paths& paths, const std::string& stage_dir,
                                           std::string* error) {
  std::unique_ptr<TlsFiles> files(new TlsFiles(paths, stage_dir));
  std::error_code fs_error;
  std::filesystem::create_directories(stage_dir, fs_error);
  if (fs_error || ::chmod(stage_dir.c_str(), 0700) != 0) {
    *error = "cannot create the TLS staging directory " + stage_dir;
    return nullptr;
  }
  if (!files->Stage(error)) return nullptr;
  return files;
}

TlsFiles::~TlsFiles() = default;

bool TlsFiles::Check(const Paths& paths, std::string* error) {
  Checked checked;
  return ReadAndCheck(paths, &checked, error);
}

bool TlsFiles::Stage(std::string* error) {
  Checked checked;
  if (!ReadAndCheck(paths_, &checked, error)) return false;
  // Key first: until the certificate follows, the watcher sees a pair that does not match and
  // keeps the old one (it re-reads when a file changes while it reads).
  const Material& m = checked.material;
  if (!WriteStaged(stage_dir_, "key.pem", m.key, error) ||
      !WriteStaged(stage_dir_, "cert.pem", m.cert, error) ||
      (!paths_.client_ca.empty() &&
       !WriteStaged(stage_dir_, "client_ca.pem", m.client_ca, error))) {
    return false;
  }
  subject_ = std::move(checked.subject);
  material_ = std::move(checked.material);
  return true;
}

std::shared_ptr<grpc::ServerCredentials> TlsFiles::Credentials() {
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      stage_dir_ + "/key.pem", stage_dir_ + "/cert.pem",
      paths_.client_ca.empty() ? "" : stage_dir_ + "/client_ca.pem", kRefreshSeconds);
  provider_ = provider;
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!paths_.client_ca.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

bool TlsFiles::Reload(std::string* error) { return Stage(error); }

}  // namespace rta::auth
