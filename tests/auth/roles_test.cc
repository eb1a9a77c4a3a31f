#include "server/auth/roles.h"

#include <catch2/catch.hpp>

namespace rta::auth {
namespace {

TEST_CASE("a role allows itself, analyst includes viewer, admin includes every role", "[auth]") {
  CHECK(RoleSet::Of({Role::kReporter}).Satisfies(Role::kReporter));
  CHECK_FALSE(RoleSet::Of({Role::kReporter}).Satisfies(Role::kViewer));
  CHECK_FALSE(RoleSet::Of({Role::kViewer}).Satisfies(Role::kReporter));
  CHECK_FALSE(RoleSet::Of({Role::kViewer}).Satisfies(Role::kAnalyst));
  CHECK(RoleSet::Of({Role::kAnalyst}).Satisfies(Role::kViewer));
  CHECK_FALSE(RoleSet::Of({Role::kAnalyst}).Satisfies(Role::kReporter));
  CHECK_FALSE(RoleSet::Of({Role::kAnalyst}).Satisfies(Role::kAdmin));
  for (Role role : {Role::kReporter, Role::kViewer, Role::kAnalyst, Role::kAdmin}) {
    CHECK(RoleSet::Of({Role::kAdmin}).Satisfies(role));
    CHECK_FALSE(RoleSet().Satisfies(role));
  }
  CHECK(RoleSet::Of({Role::kReporter, Role::kViewer}).Satisfies(Role::kViewer));
}

TEST_CASE("role lists parse with spaces and name an unknown role", "[auth]") {
  RoleSet roles;
  std::string error;
  REQUIRE(ParseRoleList(" viewer, reporter ,", &roles, &error));
  CHECK(roles == RoleSet::Of({Role::kReporter, Role::kViewer}));
  CHECK(roles.Text() == "reporter,viewer");
  CHECK_FALSE(ParseRoleList("viewer,root", &roles, &error));
  CHECK(error.find("'root'") != std::string::npos);
  CHECK(RoleSet::FromBits(0xff).bits() == 0x0f);
}

}  // namespace
}  // namespace rta::auth
