#pragma once

#include <string>
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
  // Any authenticated user may call it, whatever their roles (`required` is not looked at):
  // server reflection, which callers on loopback may use without a token at all.
  bool any_role = false;
};

std::span<const MethodAccess> AccessTable();
// The entry of `method`; nullptr for a method the table does not know (refused).
const MethodAccess* FindMethod(std::string_view method);
// What the entry asks for, as README's table says it: "viewer", or "any role".
std::string RequirementText(const MethodAccess& entry);

}  // namespace rta::auth
