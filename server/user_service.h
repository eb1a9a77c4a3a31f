#pragma once

#include <grpcpp/grpcpp.h>

#include "server/aggregator/clock.h"
#include "server/auth/authenticator.h"
#include "server/auth/user_directory.h"
#include "server/chat_hub.h"
#include "server/server_metrics.h"
#include "user_service.grpc.pb.h"

namespace rta::server {

// Who the service may let in and how it counts; shared by UserService and TokenService.
struct DirectoryAccess {
  auth::UserDirectory& users;
  const auth::Authenticator& authenticator;
  ServerMetrics& metrics;
  const agg::Clock& clock;

  // The first step of every call (as ServiceState::Authenticate for AnalyticsService). With
  // authentication off the caller is "anonymous" with role admin: a fresh server on loopback is
  // its operator's.
  grpc::Status Authenticate(const grpc::CallbackServerContext& context, Method method,
                            auth::Principal* principal) const;
};

// userservice.UserService: the user directory and the support chat.
//
// Why gRPC's callback API here and not the completion queues of AnalyticsService: these are
// rare administrative calls and one chat channel, where a reactor per call is far less code
// than a state machine per call, and their cost does not matter beside the ingest and fan-out
// paths. A directory change writes to RocksDB (synced) on the reactor's thread: a few ms, once
// per admin action.
class UserServiceImpl final : public userservice::UserService::CallbackService {
 public:
  UserServiceImpl(DirectoryAccess access, ChatHub& chat) : access_(access), chat_(chat) {}

  grpc::ServerUnaryReactor* GetUser(grpc::CallbackServerContext* context,
                                    const userservice::UserRequest* request,
                                    userservice::UserResponse* response) override;
  grpc::ServerWriteReactor<userservice::UserResponse>* ListUsers(
      grpc::CallbackServerContext* context, const userservice::UserListRequest* request) override;
  grpc::ServerReadReactor<userservice::UserUpdateRequest>* UpdateUser(
      grpc::CallbackServerContext* context, userservice::UserUpdateResponse* response) override;
  grpc::ServerBidiReactor<userservice::SupportMessage, userservice::SupportMessage>* ChatSupport(
      grpc::CallbackServerContext* context) override;

 private:
  DirectoryAccess access_;
  ChatHub& chat_;
};

// userservice.TokenService: lists tokens without their secrets.
class TokenServiceImpl final : public userservice::TokenService::CallbackService {
 public:
  explicit TokenServiceImpl(DirectoryAccess access) : access_(access) {}
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* context,
                                       const userservice::TokenListRequest* request,
                                       userservice::TokenList* response) override;

 private:
  DirectoryAccess access_;
};

}  // namespace rta::server
