#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "server/auth/roles.h"
#include "server/auth/user_directory.h"

namespace rta::auth {

// Who a call comes from, once authenticated.
struct Principal {
  std::string user_id;
  std::string token_id;
  RoleSet roles;
};

// When calls must carry a token (--auth).
enum class AuthMode {
  kAuto,      // once the directory has a user (after `analytics_server --init`); open before
  kRequired,  // always: with no user yet, every call is UNAUTHENTICATED
  kOff,       // never (loopback only, or with --insecure)
};

// Decides, in the first state of every call, whether it may go on: the bearer token of its
// `authorization` metadata, looked up by hash in the UserDirectory, must be live (not revoked,
// not expired) and its user must hold a role that allows the method (access_policy.h).
//
// Why in the call state machine and not in gRPC: an AuthMetadataProcessor does not run with
// insecure credentials in gRPC 1.51 (grpc#17942) and a C++ server interceptor cannot reject a
// call (grpc#24017). Thread-safe: Check() only reads the directory's current view.
class Authenticator {
 public:
  Authenticator(const UserDirectory& directory, AuthMode mode)
      : directory_(directory), mode_(mode) {}

  // Whether calls need a token now (kAuto changes once the first user exists).
  bool enabled() const {
    return mode_ == AuthMode::kRequired || (mode_ == AuthMode::kAuto && !directory_.empty());
  }
  // OK (and *principal filled; left empty when authentication is off), UNAUTHENTICATED when
  // the token is missing, malformed, unknown, revoked or expired, PERMISSION_DENIED when its
  // user lacks the role: each with a message that says which.
  grpc::Status Check(const grpc::ServerContextBase& context, std::string_view method,
                     int64_t now_ms, Principal* principal) const;
  // The same, from the header's value (tests, and front ends other than gRPC).
  grpc::Status CheckHeader(std::string_view authorization, bool present, std::string_view method,
                           int64_t now_ms, Principal* principal) const;

 private:
  const UserDirectory& directory_;
  const AuthMode mode_;
};

}  // namespace rta::auth
