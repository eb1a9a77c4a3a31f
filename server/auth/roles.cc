#include "server/auth/roles.h"

#include <array>

namespace rta::auth {
namespace {

constexpr std::array<const char*, kRoleCount> kNames = {"reporter", "viewer", "analyst", "admin"};

}  // namespace

const char* RoleName(Role role) { return kNames[static_cast<size_t>(role)]; }

std::optional<Role> ParseRole(std::string_view name) {
  for (int i = 0; i < kRoleCount; ++i) {
    if (name == kNames[i]) return static_cast<Role>(i);
  }
  return std::nullopt;
}

bool RoleSet::Satisfies(Role needed) const {
  if (Has(Role::kAdmin) || Has(needed)) return true;
  return needed == Role::kViewer && Has(Role::kAnalyst);
}

std::vector<std::string> RoleSet::Names() const {
  std::vector<std::string> names;
  for (int i = 0; i < kRoleCount; ++i) {
    if (Has(static_cast<Role>(i))) names.emplace_back(kNames[i]);
  }
  return names;
}

std::string RoleSet::Text() const {
  std::string text;
  for (const std::string& name : Names()) {
    if (!text.empty()) text += ',';
    text += name;
  }
  return text;
}

bool ParseRoleList(std::string_view text, RoleSet* out, std::string* error) {
  RoleSet roles;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    const std::optional<Role> role = ParseRole(item);
    if (!role) {
      *error = "unknown role '" + std::string(item) + "' (roles: reporter, viewer, analyst, admin)";
      return false;
    }
    roles.Add(*role);
  }
  *out = roles;
  return true;
}

}  // namespace rta::auth
