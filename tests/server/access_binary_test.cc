// The access rules of the real binary: exposure refused at start, `--init`'s token file, and
// tokens that survive a restart.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "analytics.grpc.pb.h"
#include "tests/support/http_client.h"
#include "tests/support/server_harness.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace {

using rta::testing::ServerProcess;
using rta::testing::TempDir;

int ExitCode(ServerProcess& process) {
  const std::optional<int> status = process.WaitForExit(std::chrono::seconds(20));
  REQUIRE(status.has_value());
  REQUIRE(WIFEXITED(*status));
  return WEXITSTATUS(*status);
}

grpc::StatusCode GetMetricsCode(const std::string& address, const std::string& token) {
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  analytics::MetricsSnapshot snapshot;
  return stub->GetMetrics(&context, analytics::MetricsQuery(), &snapshot).error_code();
}

}  // namespace

TEST_CASE("listening beyond loopback without auth or TLS is refused at start",
          "[server][binary][auth]") {
  // Refused before anything is bound: the test never opens a port beyond loopback.
  ServerProcess exposed({"--listen", "0.0.0.0:0"});
  CHECK(ExitCode(exposed) == 1);
  CHECK_THAT(exposed.Log(), Catch::Contains("refusing to listen on 0.0.0.0:0 beyond loopback"));
  CHECK_THAT(exposed.Log(), Catch::Contains("analytics_server --init"));
  CHECK_THAT(exposed.Log(), Catch::Contains("--insecure 1"));
}

TEST_CASE("analytics_server --init writes a 0600 token that opens the server, across restarts",
          "[server][binary][auth]") {
  TempDir dir;
  const std::string token_path = dir.path() + "/admin.token";
  {
    ServerProcess init({"--init", "--data-dir", dir.path()});
    REQUIRE(ExitCode(init) == 0);
  }
  struct stat info {};
  REQUIRE(::stat(token_path.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  std::string token;
  std::getline(std::ifstream(token_path), token);
  CHECK(token.rfind("rta_", 0) == 0);
  {
    ServerProcess again({"--init", "--data-dir", dir.path()});
    CHECK(ExitCode(again) == 1);
    CHECK_THAT(again.Log(), Catch::Contains("already exists"));
  }
  for (int run = 0; run < 2; ++run) {  // the second run reads users and tokens back
    INFO("run " << run);
    ServerProcess server({"--data-dir", dir.path()});
    REQUIRE(server.listening());
    CHECK_THAT(server.Log(), Catch::Contains("event=access auth=auto tokens_required=yes users=1"));
    CHECK(GetMetricsCode(server.address(), "") == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(GetMetricsCode(server.address(), token) == grpc::StatusCode::OK);
    // While it runs, --init cannot take the directory.
    ServerProcess busy({"--init", "--data-dir", dir.path()});
    CHECK(ExitCode(busy) == 1);
  }
}

TEST_CASE("a server with --init-admin makes the first admin at start and only then",
          "[server][binary][auth]") {
  TempDir dir;
  const std::string token_path = dir.path() + "/admin.token";
  std::string token;
  for (int run = 0; run < 2; ++run) {
    INFO("run " << run);
    ServerProcess server({"--data-dir", dir.path(), "--init-admin", "1"});
    REQUIRE(server.listening());
    // Made before the exposure check and the first call: tokens are required from the start.
    CHECK_THAT(server.Log(), Catch::Contains("event=access auth=auto tokens_required=yes users=1"));
    std::string read;
    std::getline(std::ifstream(token_path), read);
    if (run == 0) {
      CHECK_THAT(server.Log(), Catch::Contains("event=admin_created"));
      struct stat info {};
      REQUIRE(::stat(token_path.c_str(), &info) == 0);
      CHECK((info.st_mode & 0777) == 0600);
      token = read;
      CHECK(token.rfind("rta_", 0) == 0);
    } else {
      // A user exists: nothing made, the file untouched.
      CHECK(server.Log().find("event=admin_created") == std::string::npos);
      CHECK(read == token);
    }
    CHECK(GetMetricsCode(server.address(), "") == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(GetMetricsCode(server.address(), token) == grpc::StatusCode::OK);
  }
  // The first admin of a data directory whose users were made another way: --init-admin leaves
  // it alone too (--init refuses, as above).
  {
    ServerProcess init({"--init", "--data-dir", dir.path()});
    CHECK(ExitCode(init) == 1);
  }
}

namespace {

// The CN of the certificate the server presented on a fresh connection (and that call's code).
std::string ServerCommonName(const std::string& port, const std::string& ca_pem,
                             grpc::StatusCode* code) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  grpc::ChannelArguments arguments;
  static int channels = 0;
  arguments.SetInt("rta.test.unique_channel", ++channels);  // a new connection, never a shared one
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + port, grpc::SslCredentials(ssl), arguments));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::MetricsSnapshot snapshot;
  *code = stub->GetMetrics(&context, analytics::MetricsQuery(), &snapshot).error_code();
  const auto names = context.auth_context()->FindPropertyValues("x509_common_name");
  return names.empty() ? "" : std::string(names[0].data(), names[0].size());
}

}  // namespace

TEST_CASE(
    "SIGHUP reloads the TLS certificate (gRPC and HTTP ports) without dropping an open "
    "subscription",
    "[server][binary][auth][tls]") {
  TempDir pki;
  std::string error;
  INFO(error);
  REQUIRE(rta::testing::MakeTestCertificates(pki.path(), &error));
  const std::string ca = rta::testing::ReadWholeFile(pki.path() + "/ca.pem");
  // The operator's files: server-a now, server-b copied over them later.
  TempDir live;
  const std::string cert = live.path() + "/server.pem", key = live.path() + "/server.key";
  std::filesystem::copy_file(pki.path() + "/server_a.pem", cert);
  std::filesystem::copy_file(pki.path() + "/server_a.key", key);
  ServerProcess server({"--tls-cert", cert, "--tls-key", key, "--tick-ms", "100"});
  REQUIRE(server.listening());
  const std::string port = std::to_string(server.port());
  grpc::StatusCode code;
  CHECK(ServerCommonName(port, ca, &code) == "server-a");
  CHECK(code == grpc::StatusCode::OK);
  // The HTTP port serves the same files, and reloads with them.
  const std::string ca_file = pki.path() + "/ca.pem";
  auto http_common_name = [&] {
    const rta::testing::HttpAnswer answer =
        rta::testing::HttpsRequest(server.http_port(), ca_file, "GET", "/healthz");
    return answer.status == 200 ? answer.peer_common_name : "no answer";
  };
  CHECK(http_common_name() == "server-a");

  // A subscription on its own connection, open across the reload.
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca;
  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + port, grpc::SslCredentials(ssl)));
  grpc::ClientContext subscription;
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  auto stream = stub->SubscribeMetrics(&subscription, request);
  analytics::MetricUpdate update;
  REQUIRE(stream->Read(&update));

  // A key that does not match: refused, logged, the old pair stays.
  std::filesystem::copy_file(pki.path() + "/server_b.key", key,
                             std::filesystem::copy_options::overwrite_existing);
  server.Signal(SIGHUP);
  REQUIRE(rta::testing::WaitFor(
      [&] { return server.Log().find("tls_reload_failed") != std::string::npos; }));
  CHECK_THAT(server.Log(), Catch::Contains("does not match the certificate"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the watcher's refresh
  CHECK(ServerCommonName(port, ca, &code) == "server-a");
  CHECK(http_common_name() == "server-a");

  // The matching pair: new connections get server-b within the watcher's refresh interval.
  std::filesystem::copy_file(pki.path() + "/server_b.pem", cert,
                             std::filesystem::copy_options::overwrite_existing);
  server.Signal(SIGHUP);
  REQUIRE(rta::testing::WaitFor(
      [&] { return server.Log().find("event=tls_reloaded") != std::string::npos; }));
  CHECK(rta::testing::WaitFor([&] { return ServerCommonName(port, ca, &code) == "server-b"; }));
  CHECK(rta::testing::WaitFor([&] { return http_common_name() == "server-b"; }));
  // The subscription opened before is still there: an event reported now reaches it.
  {
    grpc::ClientContext report;
    report.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    analytics::EventResponse response;
    auto writer = stub->ReportEventBatches(&report, &response);
    analytics::EventBatch batch;
    *batch.add_events() =
        rta::testing::MakeEvent("after-reload", "page_view", rta::testing::NowMs());
    writer->Write(batch);
    writer->WritesDone();
    REQUIRE(writer->Finish().ok());
  }
  bool counted = false;
  for (int i = 0; i < 50 && !counted; ++i) {
    REQUIRE(stream->Read(&update));
    counted = update.metric_type() == "events_total" && update.value() >= 1;
  }
  CHECK(counted);
  subscription.TryCancel();
  while (stream->Read(&update)) {
  }
  stream->Finish();
  CHECK(server.running());
}

TEST_CASE("listening beyond loopback with TLS but no user is refused, naming authentication",
          "[server][binary][auth][tls]") {
  TempDir pki;
  std::string error;
  REQUIRE(rta::testing::MakeTestCertificates(pki.path(), &error));
  ServerProcess exposed({"--listen", "0.0.0.0:0", "--tls-cert", pki.path() + "/server_a.pem",
                         "--tls-key", pki.path() + "/server_a.key"});
  CHECK(ExitCode(exposed) == 1);
  CHECK_THAT(exposed.Log(), Catch::Contains("without authentication"));
  CHECK(exposed.Log().find("TLS (") == std::string::npos);
}

TEST_CASE("bad TLS files are refused before the recovery with the file and the problem named",
          "[server][binary][auth][tls]") {
  TempDir pki;
  std::string error;
  REQUIRE(rta::testing::MakeTestCertificates(pki.path(), &error));
  TempDir data;
  const std::string cert = pki.path() + "/server_a.pem";
  // Each refusal comes before the data directory is opened: no recovery is logged, and nothing
  // of the directory is created.
  auto refused_at_once = [&](std::vector<std::string> tls, const std::string& expected) {
    const std::string data_dir = data.path() + "/d";
    tls.insert(tls.end(), {"--data-dir", data_dir});
    ServerProcess server(tls);
    CHECK(ExitCode(server) == 1);
    CHECK_THAT(server.Log(), Catch::Contains(expected));
    CHECK(server.Log().find("event=recovered") == std::string::npos);
    CHECK_FALSE(std::filesystem::exists(data_dir));
  };
  SECTION("a directory as the certificate") {
    refused_at_once({"--tls-cert", pki.path(), "--tls-key", pki.path() + "/server_a.key"},
                    "tls_cert " + pki.path() + ": is a directory");
  }
  SECTION("a key of another certificate") {
    refused_at_once({"--tls-cert", cert, "--tls-key", pki.path() + "/server_b.key"},
                    "does not match the certificate in " + cert);
  }
  SECTION("a client CA file without a certificate") {
    refused_at_once({"--tls-cert", cert, "--tls-key", pki.path() + "/server_a.key",
                     "--tls-client-ca", pki.path() + "/server_a.key"},
                    "tls_client_ca " + pki.path() + "/server_a.key: no PEM certificate in it");
  }
}
