// Authentication in the call path of the real server: every RPC kind (unary, client, server
// and bidirectional streaming) against every kind of token, each cell's status code asserted,
// and the refusals counted in Prometheus by method and code.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include "server/auth/user_directory.h"
#include "server/directory_store.h"
#include "server/storage/checkpoint_store.h"
#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace {

using rta::testing::MakeEvent;
using rta::testing::NowMs;
using rta::testing::ServerHarness;
using rta::testing::TempDir;
namespace auth = rta::auth;

// Users with one role each and tokens of every kind, written to data_dir/store before the
// server starts there (as `analytics_server --init` and an admin would have).
struct Tokens {
  std::string reporter, viewer, analyst, expired_viewer, revoked_viewer;
};

Tokens PrepareDirectory(const std::string& data_dir) {
  std::string error;
  auto store = rta::storage::CheckpointStore::Open(data_dir + "/store", &error);
  REQUIRE(store != nullptr);
  rta::server::CheckpointDirectoryStore adapter(*store);
  auto users = auth::UserDirectory::Load(&adapter, &error);
  REQUIRE(users != nullptr);
  Tokens tokens;
  const int64_t now = NowMs();
  for (auto [id, role] :
       {std::pair{"rep", auth::Role::kReporter}, std::pair{"view", auth::Role::kViewer},
        std::pair{"ana", auth::Role::kAnalyst}}) {
    REQUIRE(users->PutUser({id, "", "", auth::RoleSet::Of({role})}, &error));
  }
  REQUIRE(users->CreateToken("rep", "", now, 0, &tokens.reporter, nullptr, &error));
  REQUIRE(users->CreateToken("view", "", now, 0, &tokens.viewer, nullptr, &error));
  REQUIRE(users->CreateToken("ana", "", now, 0, &tokens.analyst, nullptr, &error));
  REQUIRE(users->CreateToken("view", "", now - 60'000, now - 1'000, &tokens.expired_viewer, nullptr,
                             &error));
  REQUIRE(users->CreateToken("view", "", now, 0, &tokens.revoked_viewer, nullptr, &error));
  REQUIRE(users->RevokeToken(auth::TokenIdOf(auth::HashToken(tokens.revoked_viewer)), now, &error));
  return tokens;
}

std::unique_ptr<grpc::ClientContext> ContextWith(const std::string& token) {
  auto context = rta::testing::DeadlineContext(10);
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

// One call of each kind; the final status.
grpc::Status CallGetMetrics(analytics::AnalyticsService::Stub& stub, const std::string& token) {
  auto context = ContextWith(token);
  analytics::MetricsSnapshot snapshot;
  return stub.GetMetrics(context.get(), analytics::MetricsQuery(), &snapshot);
}

grpc::Status CallReportEventBatches(analytics::AnalyticsService::Stub& stub,
                                    const std::string& token) {
  auto context = ContextWith(token);
  analytics::EventResponse response;
  auto stream = stub.ReportEventBatches(context.get(), &response);
  analytics::EventBatch batch;
  *batch.add_events() =
      MakeEvent("auth-" + std::to_string(NowMs()) + token.substr(0, 8), "page_view", NowMs());
  stream->Write(batch);
  stream->WritesDone();
  return stream->Finish();
}

grpc::Status CallSubscribeMetrics(analytics::AnalyticsService::Stub& stub,
                                  const std::string& token) {
  auto context = ContextWith(token);
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  auto stream = stub.SubscribeMetrics(context.get(), request);
  analytics::MetricUpdate update;
  if (stream->Read(&update)) {
    // Admitted: it delivers. End it from this side.
    context->TryCancel();
    while (stream->Read(&update)) {
    }
    stream->Finish();
    return grpc::Status::OK;
  }
  return stream->Finish();
}

grpc::Status CallPublishEvents(analytics::AnalyticsService::Stub& stub, const std::string& token) {
  auto context = ContextWith(token);
  auto stream = stub.PublishEvents(context.get());
  analytics::PublishRequest request;
  request.set_producer_id("auth-producer-" + token.substr(0, 12));
  request.set_sequence(1);
  *request.add_events() = MakeEvent("pub-" + token.substr(0, 12), "page_view", NowMs());
  stream->Write(request);
  stream->WritesDone();
  analytics::PublishAck ack;
  while (stream->Read(&ack)) {
  }
  return stream->Finish();
}

grpc::Status CallAnalyzeSession(analytics::AnalyticsService::Stub& stub, const std::string& token) {
  auto context = ContextWith(token);
  auto stream = stub.AnalyzeSession(context.get());
  stream->WritesDone();
  analytics::AnalysisResult result;
  while (stream->Read(&result)) {
  }
  return stream->Finish();
}

}  // namespace

// The server's transport in the matrix, and a client channel that speaks it.
enum class Transport { kPlaintext, kTls, kMutualTls };

struct Pki {
  Pki() {
    std::string error;
    INFO(error);
    REQUIRE(rta::testing::MakeTestCertificates(dir.path(), &error));
  }
  std::string Path(const std::string& name) const { return dir.path() + "/" + name; }
  std::string Read(const std::string& name) const {
    return rta::testing::ReadWholeFile(Path(name));
  }
  TempDir dir;
};

rta::server::ServerConfig ConfigFor(Transport transport, const Pki& pki,
                                    const std::string& data_dir) {
  rta::server::ServerConfig config = ServerHarness::DefaultConfig();
  config.data_dir = data_dir;
  if (transport != Transport::kPlaintext) {
    config.tls_cert = pki.Path("server_a.pem");
    config.tls_key = pki.Path("server_a.key");
  }
  if (transport == Transport::kMutualTls) config.tls_client_ca = pki.Path("ca.pem");
  return config;
}

std::shared_ptr<grpc::Channel> ChannelFor(Transport transport, const Pki& pki, int port,
                                          const std::string& client = "client") {
  const std::string target = "127.0.0.1:" + std::to_string(port);
  if (transport == Transport::kPlaintext) {
    return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Read("ca.pem");
  if (transport == Transport::kMutualTls && !client.empty()) {
    ssl.pem_cert_chain = pki.Read(client + ".pem");
    ssl.pem_private_key = pki.Read(client + ".key");
  }
  return grpc::CreateChannel(target, grpc::SslCredentials(ssl));
}

TEST_CASE("every transport, token and RPC kind gets its status code",
          "[server][integration][auth][tls]") {
  Pki pki;
  const auto transport = GENERATE(Transport::kPlaintext, Transport::kTls, Transport::kMutualTls);
  INFO("transport " << static_cast<int>(transport));
  TempDir dir;
  const Tokens tokens = PrepareDirectory(dir.path());
  ServerHarness h(ConfigFor(transport, pki, dir.path()));
  auto stub =
      analytics::AnalyticsService::NewStub(ChannelFor(transport, pki, h.server().grpc_port()));
  using Code = grpc::StatusCode;
  using Call = grpc::Status (*)(analytics::AnalyticsService::Stub&, const std::string&);
  struct Kind {
    const char* method;
    Call call;
    std::string allowed;    // a token whose user has the role
    std::string forbidden;  // a live token whose user has not
  };
  const std::vector<Kind> kinds = {
      {"GetMetrics", CallGetMetrics, tokens.viewer, tokens.reporter},
      {"ReportEventBatches", CallReportEventBatches, tokens.reporter, tokens.viewer},
      {"SubscribeMetrics", CallSubscribeMetrics, tokens.analyst, tokens.reporter},
      {"PublishEvents", CallPublishEvents, tokens.reporter, tokens.analyst},
      {"AnalyzeSession", CallAnalyzeSession, tokens.analyst, tokens.viewer},
  };
  const std::string unknown = rta::auth::NewToken();
  for (const Kind& kind : kinds) {
    INFO(kind.method);
    const std::vector<std::pair<std::string, Code>> cells = {
        {"", Code::UNAUTHENTICATED},
        {unknown, Code::UNAUTHENTICATED},
        {tokens.revoked_viewer, Code::UNAUTHENTICATED},
        {tokens.expired_viewer, Code::UNAUTHENTICATED},
        {kind.forbidden, Code::PERMISSION_DENIED},
        {kind.allowed, Code::OK},
    };
    for (const auto& [token, expected] : cells) {
      const grpc::Status status = kind.call(*stub, token);
      INFO("token " << (token.empty() ? "(none)" : token.substr(0, 8)) << ": "
                    << status.error_message());
      CHECK(status.error_code() == expected);
    }
    const std::string series = std::string("analytics_auth_refused_total{code=\"") +
                               "UNAUTHENTICATED\",method=\"" + kind.method + "\"}";
    CHECK(rta::testing::ScrapeValue(h, series) == 4);
    CHECK(rta::testing::ScrapeValue(h, std::string("analytics_auth_refused_total{code=\"") +
                                           "PERMISSION_DENIED\",method=\"" + kind.method + "\"}") ==
          1);
  }
}

TEST_CASE("mutual TLS refuses a client without a certificate or with a stranger's",
          "[server][integration][auth][tls]") {
  Pki pki;
  TempDir dir;
  const Tokens tokens = PrepareDirectory(dir.path());
  ServerHarness h(ConfigFor(Transport::kMutualTls, pki, dir.path()));
  const int port = h.server().grpc_port();
  for (const std::string client : {"", "stranger"}) {
    INFO("client certificate: " << (client.empty() ? "none" : client));
    auto stub =
        analytics::AnalyticsService::NewStub(ChannelFor(Transport::kMutualTls, pki, port, client));
    CHECK(CallGetMetrics(*stub, tokens.viewer).error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  // And a plaintext client gets nowhere on a TLS port.
  auto plaintext =
      analytics::AnalyticsService::NewStub(ChannelFor(Transport::kPlaintext, pki, port));
  CHECK(CallGetMetrics(*plaintext, tokens.viewer).error_code() == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("a refused call says why, and costs no stream slot", "[server][integration][auth]") {
  TempDir dir;
  const Tokens tokens = PrepareDirectory(dir.path());
  rta::server::ServerConfig config = ServerHarness::DefaultConfig();
  config.data_dir = dir.path();
  config.max_streams_per_peer = 2;
  ServerHarness h(config);
  auto stub = h.NewStub();
  grpc::Status status = CallGetMetrics(*stub, "");
  CHECK_THAT(status.error_message(), Catch::Contains("authorization: Bearer"));
  status = CallGetMetrics(*stub, tokens.reporter);
  CHECK_THAT(status.error_message(), Catch::Contains("GetMetrics needs role viewer"));
  // Many refused streams in a row: none keeps a slot of the peer's 2.
  for (int i = 0; i < 10; ++i) {
    CHECK(CallAnalyzeSession(*stub, tokens.reporter).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
  }
  CHECK(CallAnalyzeSession(*stub, tokens.analyst).ok());
}

TEST_CASE("without a user the server is open on loopback, as before",
          "[server][integration][auth]") {
  TempDir dir;
  rta::server::ServerConfig config = ServerHarness::DefaultConfig();
  config.data_dir = dir.path();
  ServerHarness h(config);
  auto stub = h.NewStub();
  CHECK(CallGetMetrics(*stub, "").ok());
}

TEST_CASE("a token over its event rate gets RESOURCE_EXHAUSTED while another token is served",
          "[server][integration][auth][limits]") {
  TempDir dir;
  const Tokens tokens = PrepareDirectory(dir.path());
  std::string error, second_reporter;
  rta::server::ServerConfig config = ServerHarness::DefaultConfig();
  config.data_dir = dir.path();
  config.token_events_per_second = 100;
  config.token_max_subscriptions = 1;
  {
    // A second reporter, before the server takes the directory.
    auto store = rta::storage::CheckpointStore::Open(dir.path() + "/store", &error);
    rta::server::CheckpointDirectoryStore adapter(*store);
    auto users = auth::UserDirectory::Load(&adapter, &error);
    REQUIRE(users->PutUser({"rep2", "", "", auth::RoleSet::Of({auth::Role::kReporter})}, &error));
    REQUIRE(users->CreateToken("rep2", "", NowMs(), 0, &second_reporter, nullptr, &error));
  }
  ServerHarness h(config);
  auto stub = h.NewStub();
  auto send = [&](const std::string& token, const std::string& prefix, int events) {
    auto context = ContextWith(token);
    analytics::EventResponse response;
    auto stream = stub->ReportEventBatches(context.get(), &response);
    analytics::EventBatch batch;
    for (int i = 0; i < events; ++i) {
      *batch.add_events() = MakeEvent(prefix + std::to_string(i), "page_view", NowMs());
    }
    stream->Write(batch);
    stream->WritesDone();
    return stream->Finish();
  };
  // A second's worth at once passes (and leaves a debt of 50 events)...
  REQUIRE(send(tokens.reporter, "a", 150).ok());
  // ...so the next batch of that token is refused, saying when to retry,
  const grpc::Status over = send(tokens.reporter, "b", 10);
  CHECK(over.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(over.error_message(), Catch::Contains("--token-events-per-second"));
  CHECK_THAT(over.error_message(), Catch::Contains("retry in"));
  // while another token is served.
  CHECK(send(second_reporter, "c", 100).ok());

  // One subscription per token: a second one of the same token is refused, another token's
  // is not.
  auto first_context = ContextWith(tokens.viewer);
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  auto first = stub->SubscribeMetrics(first_context.get(), request);
  analytics::MetricUpdate update;
  REQUIRE(first->Read(&update));
  const grpc::Status second = CallSubscribeMetrics(*stub, tokens.viewer);
  CHECK(second.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(second.error_message(), Catch::Contains("--token-max-subscriptions"));
  CHECK(CallSubscribeMetrics(*stub, tokens.analyst).ok());
  first_context->TryCancel();
  while (first->Read(&update)) {
  }
  first->Finish();
}
