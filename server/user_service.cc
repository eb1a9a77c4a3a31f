#include "server/user_service.h"

#include <algorithm>
#include <deque>
#include <memory>

#include "server/auth/access_policy.h"
#include "server/callback_handoff.h"

namespace rta::server {
namespace {

constexpr uint32_t kDefaultPageSize = 100;
constexpr uint32_t kMaxPageSize = 1000;
constexpr size_t kMaxItemsPerUpdate = 10'000;
constexpr size_t kMaxErrorsReported = 100;
constexpr size_t kMaxChatText = 4096;
// Messages queued for one chat stream; a reader that falls this far behind is ended
// (RESOURCE_EXHAUSTED) rather than buffered without bound.
constexpr size_t kMaxChatOutbox = 256;

userservice::UserResponse ToResponse(const auth::UserRecord& user) {
  userservice::UserResponse response;
  response.set_user_id(user.user_id);
  response.set_name(user.name);
  response.set_email(user.email);
  for (const std::string& role : user.roles.Names()) response.add_roles(role);
  return response;
}

// Whether the directory keeps at least one admin other than `user_id`.
bool AnotherAdminExists(const auth::UserDirectory::View& view, const std::string& user_id) {
  return std::any_of(view.users.begin(), view.users.end(), [&](const auto& entry) {
    return entry.first != user_id && entry.second.roles.Has(auth::Role::kAdmin);
  });
}

// Applies one UpdateUser item; "" on success, else what was wrong (naming the field).
std::string ApplyItem(const DirectoryAccess& access, const userservice::UserUpdateRequest& item,
                      uint32_t position, userservice::UserUpdateResponse* response) {
  auth::UserDirectory& users = access.users;
  const int64_t now_ms = access.clock.NowMs();
  std::string error;
  const auto view = users.view();
  const auto existing = view->users.find(item.user_id());
  const bool is_admin =
      existing != view->users.end() && existing->second.roles.Has(auth::Role::kAdmin);
  switch (item.operation()) {
    case userservice::UserUpdateRequest::UPSERT: {
      auth::UserRecord user{item.user_id(), item.name(), item.email(), {}};
      for (const std::string& name : item.roles()) {
        const std::optional<auth::Role> role = auth::ParseRole(name);
        if (!role) return "roles: unknown role '" + name + "' (reporter, viewer, analyst, admin)";
        user.roles.Add(*role);
      }
      if (is_admin && !user.roles.Has(auth::Role::kAdmin) &&
          !AnotherAdminExists(*view, item.user_id())) {
        return "roles: this would leave no admin; make another user admin first";
      }
      if (!users.PutUser(user, &error)) return error;
      response->set_upserted(response->upserted() + 1);
      return "";
    }
    case userservice::UserUpdateRequest::DELETE:
      if (is_admin && !AnotherAdminExists(*view, item.user_id())) {
        return "user_id: '" + item.user_id() + "' is the last admin; make another user admin first";
      }
      if (!users.DeleteUser(item.user_id(), now_ms, &error)) return error;
      response->set_deleted(response->deleted() + 1);
      return "";
    case userservice::UserUpdateRequest::CREATE_TOKEN: {
      if (item.token_expires_ms() < 0 ||
          (item.token_expires_ms() != 0 && item.token_expires_ms() <= now_ms)) {
        return "token_expires_ms: " + std::to_string(item.token_expires_ms()) +
               " is not in the future (0 = never)";
      }
      std::string token;
      auth::TokenRecord record;
      if (!users.CreateToken(item.user_id(), item.token_description(), now_ms,
                             item.token_expires_ms(), &token, &record, &error)) {
        return error;
      }
      userservice::CreatedToken* created = response->add_tokens();
      created->set_item(position);
      created->set_user_id(record.user_id);
      created->set_token_id(record.token_id);
      created->set_token(token);
      created->set_expires_ms(record.expires_ms);
      response->set_tokens_created(response->tokens_created() + 1);
      return "";
    }
    case userservice::UserUpdateRequest::REVOKE_TOKEN:
      if (item.token_id().empty()) return "token_id: empty";
      if (!users.RevokeToken(item.token_id(), now_ms, &error)) return error;
      response->set_tokens_revoked(response->tokens_revoked() + 1);
      return "";
    default:
      return "operation: unknown value " + std::to_string(static_cast<int>(item.operation()));
  }
}

// A unary call's answer after authentication; `answer` runs only for an admitted caller.
template <typename Answer>
grpc::ServerUnaryReactor* Unary(const DirectoryAccess& access, grpc::CallbackServerContext* context,
                                Method method, Answer answer) {
  const auto start = std::chrono::steady_clock::now();
  auth::Principal principal;
  grpc::Status status = access.Authenticate(*context, method, &principal);
  if (status.ok()) status = answer(principal);
  access.metrics.RpcHandled(
      method, status.error_code(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

class ListUsersReactor final : public grpc::ServerWriteReactor<userservice::UserResponse> {
 public:
  ListUsersReactor(const DirectoryAccess& access, grpc::CallbackServerContext* context,
                   const userservice::UserListRequest& request)
      : access_(access), context_(context) {
    auth::Principal principal;
    grpc::Status status = access.Authenticate(*context, Method::kListUsers, &principal);
    if (status.ok()) status = Page(request);
    ReactorCreated(this);
    if (!status.ok()) {
      Done(status);
      return;
    }
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    const ReactionScope reaction(this);
    if (!ok) {
      Done({grpc::StatusCode::CANCELLED, "the client went away"});
      return;
    }
    WriteNext();
  }
  void OnDone() override {
    DoneEntered(this);
    delete this;
  }

 private:
  grpc::Status Page(const userservice::UserListRequest& request) {
    if (request.page_size() > kMaxPageSize) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "page_size: at most " +
                                                      std::to_string(kMaxPageSize) + ", got " +
                                                      std::to_string(request.page_size())};
    }
    std::optional<auth::Role> role;
    if (!request.role().empty()) {
      role = auth::ParseRole(request.role());
      if (!role) {
        return {grpc::StatusCode::INVALID_ARGUMENT,
                "role: unknown role '" + request.role() + "' (reporter, viewer, analyst, admin)"};
      }
    }
    const uint32_t page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
    const auto view = access_.users.view();
    std::vector<const auth::UserRecord*> matching;
    for (const auto& [id, user] : view->users) {
      if (id <= request.page_token() && !request.page_token().empty()) continue;
      if (role && !user.roles.Has(*role)) continue;
      matching.push_back(&user);
    }
    std::sort(matching.begin(), matching.end(),
              [](const auto* a, const auto* b) { return a->user_id < b->user_id; });
    if (matching.size() > page_size) {
      matching.resize(page_size);
      next_page_token_ = matching.back()->user_id;
    }
    for (const auth::UserRecord* user : matching) page_.push_back(ToResponse(*user));
    return grpc::Status::OK;
  }

  void WriteNext() {
    if (next_ < page_.size()) {
      StartWrite(&page_[next_++]);
      return;
    }
    context_->AddTrailingMetadata("rta-next-page-token", next_page_token_);
    Done(grpc::Status::OK);
  }

  void Done(const grpc::Status& status) {
    access_.metrics.RpcHandled(
        Method::kListUsers, status.error_code(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    Finish(status);
  }

  const DirectoryAccess& access_;
  grpc::CallbackServerContext* context_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::vector<userservice::UserResponse> page_;
  size_t next_ = 0;
  std::string next_page_token_;
};

class UpdateUserReactor final : public grpc::ServerReadReactor<userservice::UserUpdateRequest> {
 public:
  UpdateUserReactor(const DirectoryAccess& access, grpc::CallbackServerContext* context,
                    userservice::UserUpdateResponse* response)
      : access_(access), response_(response) {
    auth::Principal principal;
    grpc::Status status = access.Authenticate(*context, Method::kUpdateUser, &principal);
    ReactorCreated(this);
    if (!status.ok()) {
      Done(status);
      return;
    }
    StartRead(&item_);
  }

  void OnReadDone(bool ok) override {
    const ReactionScope reaction(this);
    if (!ok) {  // half-closed (or gone): answer with what was done
      Done(grpc::Status::OK);
      return;
    }
    ++items_;
    std::string error = items_ > kMaxItemsPerUpdate
                            ? "over the limit of " + std::to_string(kMaxItemsPerUpdate) +
                                  " items per stream; not applied"
                            : ApplyItem(access_, item_, items_, response_);
    if (!error.empty()) {
      response_->set_failed(response_->failed() + 1);
      if (static_cast<size_t>(response_->errors_size()) < kMaxErrorsReported) {
        response_->add_errors("item #" + std::to_string(items_) + " (user_id " +
                              (item_.user_id().empty() ? "\"\"" : item_.user_id()) + "): " + error);
      }
    }
    item_.Clear();
    StartRead(&item_);
  }
  void OnDone() override {
    DoneEntered(this);
    delete this;
  }

 private:
  void Done(const grpc::Status& status) {
    access_.metrics.RpcHandled(
        Method::kUpdateUser, status.error_code(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    Finish(status);
  }

  const DirectoryAccess& access_;
  userservice::UserUpdateResponse* response_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  userservice::UserUpdateRequest item_;
  uint32_t items_ = 0;
};

// One ChatSupport stream. Reads run one at a time on gRPC's threads; deliveries come from any
// thread (ChatHub::Post, under the hub's mutex) and queue in outbox_, written one at a time.
// mutex_ guards outbox_, writing_ and finished_; StartWrite and Finish are called without it
// (a reaction may run inline and take it).
class ChatReactor final
    : public grpc::ServerBidiReactor<userservice::SupportMessage, userservice::SupportMessage>,
      public ChatHub::Member {
 public:
  ChatReactor(const DirectoryAccess& access, ChatHub& hub, grpc::CallbackServerContext* context,
              const auth::Principal& principal, bool admin)
      : ChatHub::Member(principal.user_id.empty() ? "anonymous" : principal.user_id, admin),
        access_(access),
        hub_(hub) {
    (void)context;
  }

  // After construction (Deliver may run as soon as the hub knows this stream).
  void Start() {
    ReactorCreated(this);
    std::vector<userservice::SupportMessage> replay;
    if (!hub_.Join(this, &replay)) {
      FinishOnce({grpc::StatusCode::RESOURCE_EXHAUSTED,
                  "too many ChatSupport streams are open; retry later"});
      return;
    }
    // The replay (up to the hub's whole history) goes through the outbox too: the live bound
    // comes on top of it, or a join after more than kMaxChatOutbox kept messages would end in
    // "fell behind" before the client could read any.
    {
      std::lock_guard lock(mutex_);
      joined_ = true;
      outbox_limit_ = kMaxChatOutbox + replay.size();
    }
    // Tells the client it has joined: from here on it gets every message it may see live.
    StartSendInitialMetadata();
    for (const userservice::SupportMessage& message : replay) Deliver(message);
    StartRead(&in_);
  }

  void Deliver(const userservice::SupportMessage& message) override {
    const userservice::SupportMessage* next = nullptr;
    bool overflow = false;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      if (outbox_.size() >= outbox_limit_) {
        overflow = true;
      } else {
        outbox_.push_back(message);
        if (!writing_) {
          writing_ = true;
          next = &outbox_.front();
        }
      }
    }
    if (overflow) {
      FinishOnce({grpc::StatusCode::RESOURCE_EXHAUSTED,
                  "this stream fell " + std::to_string(kMaxChatOutbox) +
                      " messages behind; reconnect to get the kept messages again"});
    } else if (next != nullptr) {
      StartWrite(next);
    }
  }

  void OnReadDone(bool ok) override {
    const ReactionScope reaction(this);
    if (!ok) {  // the client half-closed: finish once what is queued is written
      bool idle;
      {
        std::lock_guard lock(mutex_);
        reads_done_ = true;
        idle = !writing_;
      }
      if (idle) FinishOnce(grpc::Status::OK);
      return;
    }
    const std::string& text = in_.text();
    if (text.empty() || text.size() > kMaxChatText) {
      FinishOnce({grpc::StatusCode::INVALID_ARGUMENT, "text: 1.." + std::to_string(kMaxChatText) +
                                                          " bytes, got " +
                                                          std::to_string(text.size())});
      return;
    }
    std::string to_user;
    if (admin()) {
      if (in_.to_user().empty()) {
        FinishOnce({grpc::StatusCode::INVALID_ARGUMENT,
                    "to_user: an admin's message names the user it answers"});
        return;
      }
      to_user = in_.to_user();
    }
    hub_.Post(user_id(), to_user, text, access_.clock.NowMs());
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    const ReactionScope reaction(this);
    const userservice::SupportMessage* next = nullptr;
    bool finish = false;
    {
      std::lock_guard lock(mutex_);
      outbox_.pop_front();
      if (ok && !finished_ && !outbox_.empty()) {
        next = &outbox_.front();
      } else {
        writing_ = false;
        finish = reads_done_ || !ok;
      }
    }
    if (next != nullptr) {
      StartWrite(next);
    } else if (finish) {
      FinishOnce(ok ? grpc::Status::OK
                    : grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    }
  }

  void OnDone() override {
    DoneEntered(this);
    // Read under the mutex that their writes held: gRPC orders OnDone after them, but in code
    // ThreadSanitizer cannot see. Leave() is called without it (Deliver locks hub, then us).
    bool joined;
    grpc::StatusCode code;
    {
      std::lock_guard lock(mutex_);
      joined = joined_;
      code = final_code_;
    }
    if (joined) hub_.Leave(this);  // no Deliver runs after this returns
    access_.metrics.RpcHandled(
        Method::kChatSupport, code,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    delete this;
  }

 private:
  void FinishOnce(const grpc::Status& status) {
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      finished_ = true;
      final_code_ = status.error_code();
    }
    Finish(status);
  }

  const DirectoryAccess& access_;
  ChatHub& hub_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  userservice::SupportMessage in_;
  bool joined_ = false;  // guarded by mutex_
  std::mutex mutex_;
  std::deque<userservice::SupportMessage> outbox_;
  size_t outbox_limit_ = kMaxChatOutbox;  // plus the replay's length, set once at Start
  bool writing_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
  grpc::StatusCode final_code_ = grpc::StatusCode::OK;
};

// A bidi reactor that only refuses (authentication failed).
class RefusedChat final
    : public grpc::ServerBidiReactor<userservice::SupportMessage, userservice::SupportMessage> {
 public:
  explicit RefusedChat(const grpc::Status& status) {
    ReactorCreated(this);
    Finish(status);
  }
  void OnDone() override {
    DoneEntered(this);
    delete this;
  }
};

}  // namespace

grpc::Status DirectoryAccess::Authenticate(const grpc::CallbackServerContext& context,
                                           Method method, auth::Principal* principal) const {
  if (!authenticator.enabled()) {
    principal->user_id = "anonymous";
    principal->roles = auth::RoleSet::Of({auth::Role::kAdmin});
    return grpc::Status::OK;
  }
  grpc::Status status = authenticator.Check(context, MethodName(method), clock.NowMs(), principal);
  if (!status.ok()) metrics.AddAuthRefused(method, status.error_code());
  return status;
}

grpc::ServerUnaryReactor* UserServiceImpl::GetUser(grpc::CallbackServerContext* context,
                                                   const userservice::UserRequest* request,
                                                   userservice::UserResponse* response) {
  return Unary(access_, context, Method::kGetUser, [&](const auth::Principal&) {
    if (request->user_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "user_id: empty");
    }
    const auto view = access_.users.view();
    const auto found = view->users.find(request->user_id());
    if (found == view->users.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "user_id: no user '" + request->user_id() + "'");
    }
    *response = ToResponse(found->second);
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<userservice::UserResponse>* UserServiceImpl::ListUsers(
    grpc::CallbackServerContext* context, const userservice::UserListRequest* request) {
  return new ListUsersReactor(access_, context, *request);
}

grpc::ServerReadReactor<userservice::UserUpdateRequest>* UserServiceImpl::UpdateUser(
    grpc::CallbackServerContext* context, userservice::UserUpdateResponse* response) {
  return new UpdateUserReactor(access_, context, response);
}

grpc::ServerBidiReactor<userservice::SupportMessage, userservice::SupportMessage>*
UserServiceImpl::ChatSupport(grpc::CallbackServerContext* context) {
  auth::Principal principal;
  const grpc::Status status = access_.Authenticate(*context, Method::kChatSupport, &principal);
  if (!status.ok()) {
    access_.metrics.RpcHandled(Method::kChatSupport, status.error_code(), 0);
    return new RefusedChat(status);
  }
  auto* reactor =
      new ChatReactor(access_, chat_, context, principal, principal.roles.Has(auth::Role::kAdmin));
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* TokenServiceImpl::ListTokens(grpc::CallbackServerContext* context,
                                                       const userservice::TokenListRequest* request,
                                                       userservice::TokenList* response) {
  return Unary(access_, context, Method::kListTokens, [&](const auth::Principal&) {
    const auto view = access_.users.view();
    std::vector<const auth::TokenRecord*> tokens;
    for (const auto& [hash, token] : view->tokens) {
      if (request->user_id().empty() || token.user_id == request->user_id()) {
        tokens.push_back(&token);
      }
    }
    std::sort(tokens.begin(), tokens.end(), [](const auto* a, const auto* b) {
      return std::tie(a->user_id, a->created_ms, a->token_id) <
             std::tie(b->user_id, b->created_ms, b->token_id);
    });
    for (const auth::TokenRecord* token : tokens) {
      userservice::TokenInfo* info = response->add_tokens();
      info->set_token_id(token->token_id);
      info->set_user_id(token->user_id);
      info->set_description(token->description);
      info->set_created_ms(token->created_ms);
      info->set_expires_ms(token->expires_ms);
      info->set_revoked_ms(token->revoked_ms);
    }
    return grpc::Status::OK;
  });
}

}  // namespace rta::server
