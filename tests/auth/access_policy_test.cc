#include "server/auth/access_policy.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>

#include "analytics.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "user_service.grpc.pb.h"

namespace rta::auth {
namespace {

TEST_CASE("every RPC of every service is in the access table, and nothing else", "[auth]") {
  std::set<std::string> rpcs, table;
  for (const google::protobuf::ServiceDescriptor* service :
       {analytics::EventData::descriptor()->file()->FindServiceByName("AnalyticsService"),
        userservice::UserRequest::descriptor()->file()->FindServiceByName("UserService"),
        userservice::UserRequest::descriptor()->file()->FindServiceByName("TokenService"),
        grpc::reflection::v1alpha::ServerReflectionRequest::descriptor()->file()->FindServiceByName(
            "ServerReflection")}) {
    REQUIRE(service != nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      rpcs.insert(service->full_name() + "/" + service->method(i)->name());
    }
  }
  for (const MethodAccess& entry : AccessTable()) {
    table.insert(std::string(entry.service) + "/" + std::string(entry.method));
  }
  CHECK(rpcs == table);
  CHECK(RequirementText(*FindMethod("GetMetrics")) == "viewer");
  CHECK(RequirementText(*FindMethod("ReportEventBatches")) == "reporter");
  CHECK(RequirementText(*FindMethod("AnalyzeSession")) == "analyst");
  CHECK(RequirementText(*FindMethod("ChatSupport")) == "analyst");
  CHECK(RequirementText(*FindMethod("UpdateUser")) == "admin");
  CHECK(RequirementText(*FindMethod("ServerReflectionInfo")) == "any role");
  CHECK(FindMethod("NoSuchMethod") == nullptr);
}

TEST_CASE("README's access table is the code's", "[auth]") {
  std::ifstream file(std::string(RTA_SOURCE_DIR) + "/README.md");
  REQUIRE(file);
  std::stringstream text;
  text << file.rdbuf();
  for (const MethodAccess& entry : AccessTable()) {
    const std::string row =
        "| `" + std::string(entry.method) + "` | " + RequirementText(entry) + " |";
    INFO(row);
    CHECK(text.str().find(row) != std::string::npos);
  }
}

}  // namespace
}  // namespace rta::auth
