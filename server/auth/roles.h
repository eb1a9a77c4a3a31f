#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rta::auth {

// What a token's user may do. Each role is a set of RPCs (access_policy.h has the one table);
// `analyst` includes `viewer`, `admin` includes everything.
enum class Role : uint8_t { kReporter = 0, kViewer = 1, kAnalyst = 2, kAdmin = 3 };
inline constexpr int kRoleCount = 4;

// A set of roles as a bit mask (bit i = Role i): a user holds several.
class RoleSet {
 public:
  RoleSet() = default;
  static RoleSet Of(std::initializer_list<Role> roles) {
    RoleSet set;
    for (Role role : roles) set.Add(role);
    return set;
  }
  static RoleSet FromBits(uint8_t bits) { return RoleSet(bits & ((1u << kRoleCount) - 1)); }
  void Add(Role role) { bits_ |= Bit(role); }
  bool Has(Role role) const { return (bits_ & Bit(role)) != 0; }
  bool empty() const { return bits_ == 0; }
  uint8_t bits() const { return bits_; }
  // Whether these roles allow what `needed` allows: the role itself, or one that includes it.
  bool Satisfies(Role needed) const;
  // "reporter,viewer" (in role order), "" when empty.
  std::string Text() const;
  std::vector<std::string> Names() const;
  bool operator==(const RoleSet&) const = default;

 private:
  explicit RoleSet(uint8_t bits) : bits_(bits) {}
  static uint8_t Bit(Role role) { return static_cast<uint8_t>(1u << static_cast<int>(role)); }
  uint8_t bits_ = 0;
};

const char* RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);
// "reporter,viewer" or with spaces; false with *error naming the unknown role.
bool ParseRoleList(std::string_view text, RoleSet* out, std::string* error);

}  // namespace rta::auth
