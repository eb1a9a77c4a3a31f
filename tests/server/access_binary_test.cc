// The access rules of the real binary: exposure refused at start, `--init`'s token file, and
// tokens that survive a restart.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "analytics.grpc.pb.h"
#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

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
