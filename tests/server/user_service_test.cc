// userservice.UserService and TokenService on the real server: the four RPCs, bulk updates with
// bad items, paging, a ChatSupport exchange between two clients, tokens made over the network.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include "server/auth/user_directory.h"
#include "server/directory_store.h"
#include "server/storage/checkpoint_store.h"
#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"
#include "user_service.grpc.pb.h"

namespace {

using rta::testing::ServerHarness;
using rta::testing::TempDir;
using userservice::UserUpdateRequest;

// An admin user and its token in data_dir/store, as `analytics_server --init` leaves them.
std::string PrepareAdmin(const std::string& data_dir) {
  std::string error, token;
  auto store = rta::storage::CheckpointStore::Open(data_dir + "/store", &error);
  REQUIRE(store != nullptr);
  rta::server::CheckpointDirectoryStore adapter(*store);
  auto users = rta::auth::UserDirectory::Load(&adapter, &error);
  REQUIRE(users != nullptr);
  REQUIRE(
      users->PutUser({"admin", "", "", rta::auth::RoleSet::Of({rta::auth::Role::kAdmin})}, &error));
  REQUIRE(users->CreateToken("admin", "", rta::testing::NowMs(), 0, &token, nullptr, &error));
  return token;
}

std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
  auto context = rta::testing::DeadlineContext(10);
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

UserUpdateRequest Upsert(const std::string& id, const std::string& email,
                         std::vector<std::string> roles) {
  UserUpdateRequest item;
  item.set_operation(UserUpdateRequest::UPSERT);
  item.set_user_id(id);
  item.set_name("Name of " + id);
  item.set_email(email);
  for (const std::string& role : roles) item.add_roles(role);
  return item;
}

UserUpdateRequest Op(UserUpdateRequest::Operation operation, const std::string& user_id,
                     const std::string& token_id = "") {
  UserUpdateRequest item;
  item.set_operation(operation);
  item.set_user_id(user_id);
  item.set_token_id(token_id);
  return item;
}

grpc::Status Update(userservice::UserService::Stub& stub, const std::string& token,
                    const std::vector<UserUpdateRequest>& items,
                    userservice::UserUpdateResponse* response) {
  auto context = As(token);
  auto stream = stub.UpdateUser(context.get(), response);
  for (const auto& item : items) {
    if (!stream->Write(item)) break;
  }
  stream->WritesDone();
  return stream->Finish();
}

// One page; *next is the trailer's next page token.
std::vector<std::string> Page(userservice::UserService::Stub& stub, const std::string& token,
                              uint32_t size, const std::string& after, const std::string& role,
                              std::string* next, grpc::Status* status) {
  auto context = As(token);
  userservice::UserListRequest request;
  request.set_page_size(size);
  request.set_page_token(after);
  request.set_role(role);
  auto stream = stub.ListUsers(context.get(), request);
  std::vector<std::string> ids;
  userservice::UserResponse user;
  while (stream->Read(&user)) ids.push_back(user.user_id());
  *status = stream->Finish();
  const auto& trailers = context->GetServerTrailingMetadata();
  const auto found = trailers.find("rta-next-page-token");
  *next =
      found == trailers.end() ? "(none)" : std::string(found->second.data(), found->second.size());
  return ids;
}

struct Fixture {
  Fixture() : admin(PrepareAdmin(dir.path())), harness(Config(dir.path())) {
    users = userservice::UserService::NewStub(harness.NewChannel());
    tokens = userservice::TokenService::NewStub(harness.NewChannel());
  }
  static rta::server::ServerConfig Config(const std::string& data_dir) {
    auto config = ServerHarness::DefaultConfig();
    config.data_dir = data_dir;
    return config;
  }
  // A user with `role` and a token for it, made over the network.
  std::string UserWithToken(const std::string& id, const std::string& role) {
    userservice::UserUpdateResponse response;
    REQUIRE(Update(*users, admin, {Upsert(id, "", {role}), Op(UserUpdateRequest::CREATE_TOKEN, id)},
                   &response)
                .ok());
    REQUIRE(response.tokens_size() == 1);
    return response.tokens(0).token();
  }
  TempDir dir;
  std::string admin;
  ServerHarness harness;
  std::unique_ptr<userservice::UserService::Stub> users;
  std::unique_ptr<userservice::TokenService::Stub> tokens;
};

}  // namespace

TEST_CASE("UpdateUser applies a bulk stream item by item and names each bad one",
          "[server][integration][users]") {
  Fixture f;
  userservice::UserUpdateResponse response;
  REQUIRE(Update(*f.users, f.admin,
                 {Upsert("ana", "ana@example.com", {"analyst"}),
                  Upsert("bob", "bob.example.com", {"viewer"}),  // #2: bad email
                  Upsert("cy", "", {"viewer", "superuser"}),     // #3: unknown role
                  Upsert("dee", "", {"reporter", "viewer"}),
                  Op(UserUpdateRequest::DELETE, "nobody"),  // #5: no such user
                  Op(UserUpdateRequest::CREATE_TOKEN, "ana"),
                  Op(UserUpdateRequest::REVOKE_TOKEN, "", "ffffffffffff"),  // #7: unknown
                  Op(UserUpdateRequest::DELETE, "admin")},                  // #8: the last admin
                 &response)
              .ok());
  CHECK(response.upserted() == 2);
  CHECK(response.tokens_created() == 1);
  CHECK(response.failed() == 5);
  REQUIRE(response.errors_size() == 5);
  CHECK_THAT(response.errors(0), Catch::StartsWith("item #2 (user_id bob): email"));
  CHECK_THAT(response.errors(1),
             Catch::Contains("item #3 (user_id cy): roles: unknown role 'superuser'"));
  CHECK_THAT(response.errors(2), Catch::Contains("item #5 (user_id nobody): user_id: no user"));
  CHECK_THAT(response.errors(3), Catch::Contains("item #7"));
  CHECK_THAT(response.errors(3), Catch::Contains("token_id"));
  CHECK_THAT(response.errors(4),
             Catch::Contains("item #8 (user_id admin): user_id: 'admin' is the last admin"));
  REQUIRE(response.tokens_size() == 1);
  CHECK(response.tokens(0).item() == 6);
  CHECK(response.tokens(0).user_id() == "ana");
  CHECK(response.tokens(0).token().rfind("rta_", 0) == 0);

  SECTION("GetUser finds what was written, and says what is missing") {
    auto context = As(f.admin);
    userservice::UserRequest request;
    request.set_user_id("dee");
    userservice::UserResponse user;
    REQUIRE(f.users->GetUser(context.get(), request, &user).ok());
    CHECK(user.name() == "Name of dee");
    CHECK(std::vector<std::string>(user.roles().begin(), user.roles().end()) ==
          std::vector<std::string>{"reporter", "viewer"});
    request.set_user_id("bob");
    context = As(f.admin);
    const grpc::Status missing = f.users->GetUser(context.get(), request, &user);
    CHECK(missing.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(missing.error_message(), Catch::Contains("'bob'"));
  }
  SECTION("the new token works, ListTokens shows it without its secret, a revocation ends it") {
    const std::string token = response.tokens(0).token();
    auto analytics = analytics::AnalyticsService::NewStub(f.harness.NewChannel());
    analytics::MetricsSnapshot snapshot;
    CHECK(analytics->GetMetrics(As(token).get(), analytics::MetricsQuery(), &snapshot).ok());
    userservice::TokenListRequest list_request;
    list_request.set_user_id("ana");
    userservice::TokenList list;
    REQUIRE(f.tokens->ListTokens(As(f.admin).get(), list_request, &list).ok());
    REQUIRE(list.tokens_size() == 1);
    CHECK(list.tokens(0).token_id() == response.tokens(0).token_id());
    CHECK(list.DebugString().find(token) == std::string::npos);
    userservice::UserUpdateResponse revoked;
    REQUIRE(Update(*f.users, f.admin,
                   {Op(UserUpdateRequest::REVOKE_TOKEN, "", response.tokens(0).token_id())},
                   &revoked)
                .ok());
    CHECK(revoked.tokens_revoked() == 1);
    CHECK(
        analytics->GetMetrics(As(token).get(), analytics::MetricsQuery(), &snapshot).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_CASE("ListUsers pages in user_id order and filters by role", "[server][integration][users]") {
  Fixture f;
  std::vector<UserUpdateRequest> items;
  for (int i = 0; i < 25; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "u%02d", i);
    items.push_back(Upsert(id, "", {i % 5 == 0 ? "analyst" : "viewer"}));
  }
  userservice::UserUpdateResponse response;
  REQUIRE(Update(*f.users, f.admin, items, &response).ok());
  REQUIRE(response.upserted() == 25);
  std::vector<std::string> all;
  std::string after, next;
  grpc::Status status;
  for (int page = 0; page < 10; ++page) {
    const auto ids = Page(*f.users, f.admin, 10, after, "", &next, &status);
    REQUIRE(status.ok());
    all.insert(all.end(), ids.begin(), ids.end());
    if (next.empty()) break;
    CHECK(ids.size() == 10);
    CHECK(next == ids.back());
    after = next;
  }
  REQUIRE(all.size() == 26);  // and admin
  CHECK(std::is_sorted(all.begin(), all.end()));
  CHECK(all.front() == "admin");
  const auto analysts = Page(*f.users, f.admin, 0, "", "analyst", &next, &status);
  CHECK(analysts == std::vector<std::string>{"u00", "u05", "u10", "u15", "u20"});
  Page(*f.users, f.admin, 5000, "", "", &next, &status);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(status.error_message(), Catch::Contains("page_size"));
  Page(*f.users, f.admin, 0, "", "root", &next, &status);
  CHECK_THAT(status.error_message(), Catch::Contains("role: unknown role 'root'"));
}

TEST_CASE("ChatSupport: a question reaches the admin, the answer reaches the asker, both replay",
          "[server][integration][users]") {
  Fixture f;
  const std::string analyst = f.UserWithToken("ana", "analyst");
  using Stream = grpc::ClientReaderWriter<userservice::SupportMessage, userservice::SupportMessage>;
  auto admin_context = As(f.admin);
  auto analyst_context = As(analyst);
  std::unique_ptr<Stream> admin_stream = f.users->ChatSupport(admin_context.get());
  std::unique_ptr<Stream> analyst_stream = f.users->ChatSupport(analyst_context.get());
  // The server sends initial metadata once a stream has joined the hub: after this, both
  // are live and the question takes the live path (not the replay).
  admin_stream->WaitForInitialMetadata();
  analyst_stream->WaitForInitialMetadata();
  userservice::SupportMessage question;
  question.set_text("Why did conversions drop at 10:00?");
  question.set_to_user("ignored-for-analysts");
  REQUIRE(analyst_stream->Write(question));
  userservice::SupportMessage got;
  REQUIRE(admin_stream->Read(&got));
  CHECK_FALSE(got.replayed());
  CHECK(got.from_user() == "ana");
  CHECK(got.to_user().empty());
  CHECK(got.text() == question.text());
  CHECK_FALSE(got.message_id().empty());
  CHECK(got.timestamp_ms() > 0);
  REQUIRE(analyst_stream->Read(&got));  // the echo, with the server's id
  CHECK(got.text() == question.text());

  userservice::SupportMessage answer;
  answer.set_to_user("ana");
  answer.set_text("A campaign ended; see utm_campaign=spring.");
  REQUIRE(admin_stream->Write(answer));
  REQUIRE(analyst_stream->Read(&got));
  CHECK(got.from_user() == "admin");
  CHECK(got.text() == answer.text());
  REQUIRE(admin_stream->Read(&got));  // the admin's own echo
  CHECK(got.to_user() == "ana");

  // A second admin joining later gets both, marked replayed.
  auto late_context = As(f.admin);
  auto late = f.users->ChatSupport(late_context.get());
  REQUIRE(late->Read(&got));
  CHECK(got.replayed());
  CHECK(got.text() == question.text());
  REQUIRE(late->Read(&got));
  CHECK(got.text() == answer.text());
  late->WritesDone();
  CHECK(late->Finish().ok());

  // An admin's message must say whom it answers.
  userservice::SupportMessage unaddressed;
  unaddressed.set_text("hello?");
  REQUIRE(admin_stream->Write(unaddressed));
  while (admin_stream->Read(&got)) {
  }
  const grpc::Status refused = admin_stream->Finish();
  CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(refused.error_message(), Catch::Contains("to_user"));
  analyst_stream->WritesDone();
  while (analyst_stream->Read(&got)) {
  }
  CHECK(analyst_stream->Finish().ok());
}

TEST_CASE("ChatSupport: an admin joining after 600 kept messages gets them all, in order",
          "[server][integration][users]") {
  Fixture f;
  const std::string analyst = f.UserWithToken("ana", "analyst");
  using Stream = grpc::ClientReaderWriter<userservice::SupportMessage, userservice::SupportMessage>;
  constexpr int kMessages = 600;  // more than one stream's live outbox (256)
  {
    auto context = As(analyst);
    std::unique_ptr<Stream> asker = f.users->ChatSupport(context.get());
    userservice::SupportMessage got;
    for (int i = 0; i < kMessages; ++i) {
      userservice::SupportMessage question;
      question.set_text("question " + std::to_string(i));
      REQUIRE(asker->Write(question));
      REQUIRE(asker->Read(&got));  // the echo: read as we go, so this stream never falls behind
    }
    asker->WritesDone();
    while (asker->Read(&got)) {
    }
    REQUIRE(asker->Finish().ok());
  }
  auto context = As(f.admin);
  std::unique_ptr<Stream> admin = f.users->ChatSupport(context.get());
  userservice::SupportMessage got;
  for (int i = 0; i < kMessages; ++i) {
    REQUIRE(admin->Read(&got));
    CHECK(got.replayed());
    CHECK(got.text() == "question " + std::to_string(i));
  }
  admin->WritesDone();
  while (admin->Read(&got)) {
  }
  CHECK(admin->Finish().ok());
}

TEST_CASE("UserService refuses callers without a token or without the role, every RPC kind",
          "[server][integration][users][auth]") {
  Fixture f;
  const std::string viewer = f.UserWithToken("vic", "viewer");
  for (const std::string& token : {std::string(), viewer}) {
    const grpc::StatusCode expected =
        token.empty() ? grpc::StatusCode::UNAUTHENTICATED : grpc::StatusCode::PERMISSION_DENIED;
    userservice::UserResponse user;
    userservice::UserRequest request;
    request.set_user_id("admin");
    CHECK(f.users->GetUser(As(token).get(), request, &user).error_code() == expected);
    std::string next;
    grpc::Status status;
    Page(*f.users, token, 0, "", "", &next, &status);
    CHECK(status.error_code() == expected);
    userservice::UserUpdateResponse response;
    CHECK(Update(*f.users, token, {Upsert("eve", "", {"admin"})}, &response).error_code() ==
          expected);
    auto context = As(token);
    auto chat = f.users->ChatSupport(context.get());
    chat->WritesDone();
    userservice::SupportMessage message;
    while (chat->Read(&message)) {
    }
    CHECK(chat->Finish().error_code() == expected);
  }
  // Nothing was written by the refused calls.
  userservice::UserResponse user;
  userservice::UserRequest request;
  request.set_user_id("eve");
  CHECK(f.users->GetUser(As(f.admin).get(), request, &user).error_code() ==
        grpc::StatusCode::NOT_FOUND);
}
