#include "server/auth/access_policy.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>

#include "analytics.grpc.pb.h"
#include "user_service.grpc.pb.h"

namespace rta::auth {
namespace {

TEST_CASE("every RPC of every service is in the access table, and nothing else", "[auth]") {
  std::set<std::string> rpcs, table;
  for (const google::protobuf::ServiceDescriptor* service :
       {analytics::EventData::descriptor()->file()->FindServiceByName("AnalyticsService"),
        userservice::UserRequest::descriptor()->file()->FindServiceByName("UserService"),
        userservice::UserRequest::descriptor()->file()->FindServiceByName("TokenService")}) {
    REQUIRE(service != nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      rpcs.insert(service->full_name() + "/" + service->method(i)->name());
    }
  }
  for (const MethodAccess& entry : AccessTable()) {
    table.insert(std::string(entry.service) + "/" + std::string(entry.method));
  }
  CHECK(rpcs == table);
  CHECK(RequiredRole("GetMetrics") == Role::kViewer);
  CHECK(RequiredRole("ReportEventBatches") == Role::kReporter);
  CHECK(RequiredRole("AnalyzeSession") == Role::kAnalyst);
  CHECK(RequiredRole("ChatSupport") == Role::kAnalyst);
  CHECK(RequiredRole("UpdateUser") == Role::kAdmin);
  CHECK_FALSE(RequiredRole("NoSuchMethod").has_value());
}

TEST_CASE("README's access table is the code's", "[auth]") {
  std::ifstream file(std::string(RTA_SOURCE_DIR) + "/README.md");
  REQUIRE(file);
  std::stringstream text;
  text << file.rdbuf();
  for (const MethodAccess& entry : AccessTable()) {
    const std::string row =
        "| `" + std::string(entry.method) + "` | " + RoleName(entry.required) + " |";
    INFO(row);
    CHECK(text.str().find(row) != std::string::npos);
  }
}

}  // namespace
}  // namespace rta::auth
