#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "server/auth/roles.h"

namespace rta::auth {

// The one table of who may call what: each RPC (by its method name, as in the Prometheus
// `method` label) and the role it needs. README.md's "Access" section shows the same table; a
// test checks that the two agree.
struct MethodAccess {
  std::string_view service;  // "analytics.AnalyticsService"
  std::string_view method;   // "GetMetrics"
  Role required;
};

std::span<const MethodAccess> AccessTable();
// The role `method` needs; nullopt for a method the table does not know (refused).
std::optional<Role> RequiredRole(std::string_view method);

}  // namespace rta::auth
