#include "server/auth/authenticator.h"

#include <ctime>

#include "server/auth/access_policy.h"

namespace rta::auth {
namespace {

std::string Utc(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// "role viewer", or "a token of any role".
std::string NeedsText(const MethodAccess& access) {
  return access.any_role ? "a token of any role" : "role " + std::string(RoleName(access.required));
}

}  // namespace

grpc::Status Authenticator::Check(const grpc::ServerContextBase& context, std::string_view method,
                                  int64_t now_ms, Principal* principal) const {
  if (!enabled()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) return CheckHeader({}, false, method, now_ms, principal);
  if (metadata.count("authorization") > 1) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "more than one authorization header: send exactly one 'Bearer <token>'"};
  }
  return CheckHeader(std::string_view(found->second.data(), found->second.size()), true, method,
                     now_ms, principal);
}

grpc::Status Authenticator::CheckHeader(std::string_view authorization, bool present,
                                        std::string_view method, int64_t now_ms,
                                        Principal* principal) const {
  if (!enabled()) return grpc::Status::OK;
  const MethodAccess* access = FindMethod(method);
  if (access == nullptr) {
    return {grpc::StatusCode::PERMISSION_DENIED,
            "method " + std::string(method) + " is in no role's table"};
  }
  if (!present) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "missing token: this server requires 'authorization: Bearer <token>' (" +
                std::string(method) + " needs " + NeedsText(*access) + ")"};
  }
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !EqualsIgnoringCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "malformed authorization header: expected 'Bearer <token>'"};
  }
  const std::string_view token = authorization.substr(kScheme.size());
  if (!LooksLikeToken(token)) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "unknown token: not an API token of this server (they start with 'rta_')"};
  }
  const std::shared_ptr<const UserDirectory::View> view = directory_.view();
  const auto entry = view->tokens.find(HashToken(token));
  if (entry == view->tokens.end()) {
    return {grpc::StatusCode::UNAUTHENTICATED, "unknown token"};
  }
  const TokenRecord& record = entry->second;
  if (record.revoked_ms != 0) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "token " + record.token_id + " was revoked at " + Utc(record.revoked_ms)};
  }
  if (record.expires_ms != 0 && now_ms >= record.expires_ms) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            "token " + record.token_id + " expired at " + Utc(record.expires_ms)};
  }
  const auto user = view->users.find(record.user_id);
  if (user == view->users.end()) {
    return {grpc::StatusCode::UNAUTHENTICATED, "token " + record.token_id + " belongs to user '" +
                                                   record.user_id + "', who no longer exists"};
  }
  if (!access->any_role && !user->second.roles.Satisfies(access->required)) {
    const std::string held = user->second.roles.Text();
    return {grpc::StatusCode::PERMISSION_DENIED,
            std::string(method) + " needs role " + RoleName(access->required) + "; user '" +
                record.user_id + "' has " + (held.empty() ? "no role" : "roles " + held)};
  }
  principal->user_id = record.user_id;
  principal->token_id = record.token_id;
  principal->roles = user->second.roles;
  return grpc::Status::OK;
}

}  // namespace rta::auth
