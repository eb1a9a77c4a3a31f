#include "bench/load/secure_access.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "analytics.grpc.pb.h"
#include "user_service.grpc.pb.h"

namespace rta::bench {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

}  // namespace

SecureAccess::SecureAccess() {
  char path[] = "/tmp/rta_bench_tls_XXXXXX";
  if (mkdtemp(path) == nullptr) throw std::runtime_error("cannot make a temporary directory");
  dir_ = path;
  const std::string command =
      "cd '" + dir_ +
      "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
      "-keyout server.key -out server.pem -days 2 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >openssl.log 2>&1";
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("openssl could not make a certificate: " +
                             ReadFile(dir_ + "/openssl.log"));
  }
}

SecureAccess::~SecureAccess() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string SecureAccess::ServerFlags() const {
  return "--tls-cert " + dir_ + "/server.pem --tls-key " + dir_ + "/server.key";
}

std::shared_ptr<grpc::ChannelCredentials> SecureAccess::Bootstrap(
    const std::string& address) const {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(dir_ + "/server.pem");  // self-signed: it is its own root
  const std::shared_ptr<grpc::ChannelCredentials> tls = grpc::SslCredentials(ssl);
  auto stub = userservice::UserService::NewStub(grpc::CreateChannel(address, tls));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  userservice::UserUpdateResponse response;
  auto writer = stub->UpdateUser(&context, &response);
  userservice::UserUpdateRequest user;
  user.set_operation(userservice::UserUpdateRequest::UPSERT);
  user.set_user_id("bench");
  user.add_roles("admin");
  userservice::UserUpdateRequest token;
  token.set_operation(userservice::UserUpdateRequest::CREATE_TOKEN);
  token.set_user_id("bench");
  token.set_token_description("load_driver access scenario");
  writer->Write(user);
  writer->Write(token);
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok() || response.tokens_size() != 1) {
    throw std::runtime_error("could not create the bench user and token: " +
                             (status.ok() ? (response.errors().empty() ? std::string("no token")
                                                                       : response.errors(0))
                                          : status.error_message()));
  }
  // The measurement is honest only if the server now asks every call for its token.
  {
    auto analytics = analytics::AnalyticsService::NewStub(grpc::CreateChannel(address, tls));
    grpc::ClientContext probe;
    probe.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    analytics::MetricsSnapshot snapshot;
    const grpc::Status refused = analytics->GetMetrics(&probe, {}, &snapshot);
    if (refused.error_code() != grpc::StatusCode::UNAUTHENTICATED) {
      throw std::runtime_error("the server did not start asking for tokens (GetMetrics without "
                               "one: " + refused.error_message() + ")");
    }
  }
  return grpc::CompositeChannelCredentials(
      tls, grpc::AccessTokenCredentials(response.tokens(0).token()));
}

}  // namespace rta::bench
