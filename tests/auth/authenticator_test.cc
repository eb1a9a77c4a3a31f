#include "server/auth/authenticator.h"

#include <catch2/catch.hpp>

namespace rta::auth {
namespace {

constexpr int64_t kNow = 1'000'000;

struct Fixture {
  Fixture() {
    std::string error;
    users = UserDirectory::Load(nullptr, &error);
    REQUIRE(users->PutUser({"rep", "", "", RoleSet::Of({Role::kReporter})}, &error));
    REQUIRE(users->PutUser({"ana", "", "", RoleSet::Of({Role::kAnalyst})}, &error));
    REQUIRE(users->CreateToken("rep", "", 0, 0, &reporter, nullptr, &error));
    REQUIRE(users->CreateToken("ana", "", 0, 0, &analyst, nullptr, &error));
    REQUIRE(users->CreateToken("ana", "", 0, kNow, &expired, nullptr, &error));
    REQUIRE(users->CreateToken("ana", "", 0, 0, &revoked, nullptr, &error));
    REQUIRE(users->RevokeToken(TokenIdOf(HashToken(revoked)), 10, &error));
  }
  grpc::Status Check(const std::string& header, std::string_view method, bool present = true) {
    Authenticator auth(*users, AuthMode::kAuto);
    return auth.CheckHeader(header, present, method, kNow, &principal);
  }
  std::unique_ptr<UserDirectory> users;
  std::string reporter, analyst, expired, revoked;
  Principal principal;
};

void CheckRefused(const grpc::Status& status, grpc::StatusCode code, const std::string& says) {
  INFO(status.error_message());
  CHECK(status.error_code() == code);
  CHECK(status.error_message().find(says) != std::string::npos);
}

TEST_CASE("each way a token can fail has its code and says why", "[auth]") {
  Fixture f;
  using grpc::StatusCode;
  CheckRefused(f.Check("", "GetMetrics", false), StatusCode::UNAUTHENTICATED, "missing token");
  CheckRefused(f.Check("Basic abc", "GetMetrics"), StatusCode::UNAUTHENTICATED, "malformed");
  CheckRefused(f.Check("Bearer nonsense", "GetMetrics"), StatusCode::UNAUTHENTICATED,
               "unknown token");
  CheckRefused(f.Check("Bearer " + NewToken(), "GetMetrics"), StatusCode::UNAUTHENTICATED,
               "unknown token");
  CheckRefused(f.Check("Bearer " + f.revoked, "GetMetrics"), StatusCode::UNAUTHENTICATED,
               "revoked");
  CheckRefused(f.Check("Bearer " + f.expired, "GetMetrics"), StatusCode::UNAUTHENTICATED,
               "expired");
  CheckRefused(f.Check("Bearer " + f.reporter, "GetMetrics"), StatusCode::PERMISSION_DENIED,
               "GetMetrics needs role viewer; user 'rep' has roles reporter");
  CheckRefused(f.Check("Bearer " + f.analyst, "ReportEventBatches"), StatusCode::PERMISSION_DENIED,
               "needs role reporter");
  CheckRefused(f.Check("Bearer " + f.analyst, "SomethingNew"), StatusCode::PERMISSION_DENIED,
               "no role");
}

TEST_CASE("a live token with the role passes and names its user", "[auth]") {
  Fixture f;
  REQUIRE(f.Check("Bearer " + f.analyst, "GetMetrics").ok());  // analyst includes viewer
  CHECK(f.principal.user_id == "ana");
  CHECK(f.principal.token_id == TokenIdOf(HashToken(f.analyst)));
  CHECK(f.Check("bearer " + f.analyst, "AnalyzeSession").ok());  // the scheme ignores case
  CHECK(f.Check("Bearer " + f.reporter, "PublishEvents").ok());
}

TEST_CASE("auto needs tokens once a user exists, off never, required always", "[auth]") {
  std::string error;
  std::unique_ptr<UserDirectory> users = UserDirectory::Load(nullptr, &error);
  Principal principal;
  CHECK_FALSE(Authenticator(*users, AuthMode::kAuto).enabled());
  CHECK(Authenticator(*users, AuthMode::kAuto)
            .CheckHeader("", false, "GetMetrics", kNow, &principal)
            .ok());
  CHECK(Authenticator(*users, AuthMode::kRequired)
            .CheckHeader("", false, "GetMetrics", kNow, &principal)
            .error_code() == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(users->PutUser({"admin", "", "", RoleSet::Of({Role::kAdmin})}, &error));
  CHECK(Authenticator(*users, AuthMode::kAuto).enabled());
  CHECK_FALSE(Authenticator(*users, AuthMode::kOff).enabled());
  CHECK(Authenticator(*users, AuthMode::kOff)
            .CheckHeader("", false, "GetMetrics", kNow, &principal)
            .ok());
}

}  // namespace
}  // namespace rta::auth
