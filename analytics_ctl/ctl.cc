#include "analytics_ctl/ctl.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "clients/common/client_channel.h"
#include "clients/common/flags.h"
#include "user_service.grpc.pb.h"

namespace rta::ctl {
namespace {

constexpr char kUsage[] =
    R"(analytics_ctl: manage the users, API tokens and support chat of analytics_server

Usage: analytics_ctl [connection flags] COMMAND

  users list [--role R] [--page-size N]   every user, one JSON object per line
  users get USER_ID                       one user as JSON
  users update                            JSON Lines on stdin, one UserUpdateRequest each:
                                          {"user_id":"ana","email":"ana@example.com","roles":["analyst"]}
                                          {"operation":"DELETE","user_id":"bob"}
                                          prints the counts and each bad item; exit 1 if any
  tokens create USER_ID [--expires-in D] [--description TEXT]
                                          a new token for the user, printed alone on stdout
                                          (shown once); D like 30d, 12h, 90m or 3600s
  tokens revoke TOKEN_ID                  revokes a token by its id (tokens list shows them)
  tokens list [USER_ID]                   tokens without their secrets, one JSON object per line
  chat [--to USER] [--linger-ms MS]       the support channel: each stdin line is sent (an
                                          admin answers USER, or a line "@user text"); what
                                          arrives is printed as JSON Lines; at the end of
                                          input, waits MS (default 1000) for answers

Exit status: 0 done, 1 refused or failed (the server's message is printed), 2 usage error.

Connection flags:
  --timeout-ms MS       deadline of each call, default 10000
)";

struct Context {
  const CtlEnvironment& env;
  client::ChannelOptions channel_options;
  std::shared_ptr<grpc::Channel> channel;
  int64_t timeout_ms = 10'000;

  std::unique_ptr<grpc::ClientContext> NewCall() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    // A connection that is still being made (or re-made) is waited for, up to the deadline,
    // rather than failing the command at once.
    context->set_wait_for_ready(true);
    client::AddCredentials(channel_options, context.get());
    return context;
  }
  int Failed(const char* what, const grpc::Status& status) const {
    *env.err << "analytics_ctl: " << what << ": " << client::StatusCodeName(status.error_code())
             << ": " << status.error_message() << "\n";
    return 1;
  }
};

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;  // the same keys on every line, for jq
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  return text;
}

// "30d", "12h", "90m", "3600s" → milliseconds; -1 when malformed.
int64_t ParseDuration(const std::string& text) {
  if (text.size() < 2) return -1;
  int64_t unit = 0;
  switch (text.back()) {
    case 'd':
      unit = 86'400'000;
      break;
    case 'h':
      unit = 3'600'000;
      break;
    case 'm':
      unit = 60'000;
      break;
    case 's':
      unit = 1'000;
      break;
    default:
      return -1;
  }
  int64_t value = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9' || value > 1'000'000'000) return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value > 0 ? value * unit : -1;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Sends the items on one UpdateUser stream; prints the response's counts and errors.
int Update(const Context& ctx, const std::vector<userservice::UserUpdateRequest>& items,
           userservice::UserUpdateResponse* response) {
  auto stub = userservice::UserService::NewStub(ctx.channel);
  auto call = ctx.NewCall();
  auto stream = stub->UpdateUser(call.get(), response);
  for (const auto& item : items) {
    if (!stream->Write(item)) break;
  }
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) return ctx.Failed("UpdateUser", status);
  for (const std::string& error : response->errors()) *ctx.env.err << error << "\n";
  if (response->failed() > static_cast<uint32_t>(response->errors_size())) {
    *ctx.env.err << "... and " << response->failed() - response->errors_size()
                 << " more bad items\n";
  }
  return response->failed() == 0 ? 0 : 1;
}

int UsersList(const Context& ctx, client::Flags& flags) {
  auto stub = userservice::UserService::NewStub(ctx.channel);
  userservice::UserListRequest request;
  request.set_role(flags.String("role"));
  request.set_page_size(static_cast<uint32_t>(flags.Integer("page-size", 100, 1, 1000)));
  if (!flags.error().empty()) return -1;
  for (;;) {
    auto call = ctx.NewCall();
    auto stream = stub->ListUsers(call.get(), request);
    userservice::UserResponse user;
    uint32_t received = 0;
    std::string last;
    while (stream->Read(&user)) {
      *ctx.env.out << Json(user) << "\n";
      last = user.user_id();
      ++received;
    }
    const grpc::Status status = stream->Finish();
    if (!status.ok()) return ctx.Failed("ListUsers", status);
    if (received < request.page_size()) return 0;
    request.set_page_token(last);
  }
}

int UsersGet(const Context& ctx, const std::string& user_id) {
  auto stub = userservice::UserService::NewStub(ctx.channel);
  userservice::UserRequest request;
  request.set_user_id(user_id);
  userservice::UserResponse user;
  auto call = ctx.NewCall();
  const grpc::Status status = stub->GetUser(call.get(), request, &user);
  if (!status.ok()) return ctx.Failed("GetUser", status);
  *ctx.env.out << Json(user) << "\n";
  return 0;
}

int UsersUpdate(const Context& ctx) {
  std::vector<userservice::UserUpdateRequest> items;
  std::string line;
  for (size_t number = 1; std::getline(*ctx.env.in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    userservice::UserUpdateRequest item;
    const auto parsed = google::protobuf::util::JsonStringToMessage(line, &item);
    if (!parsed.ok()) {
      *ctx.env.err << "analytics_ctl: stdin line " << number
                   << ": not a UserUpdateRequest: " << parsed.message() << "\n";
      return 2;
    }
    items.push_back(std::move(item));
  }
  userservice::UserUpdateResponse response;
  const int status = Update(ctx, items, &response);
  userservice::UserUpdateResponse counts = response;
  counts.clear_tokens();  // secrets go out one per line below, never mixed into the summary
  counts.clear_errors();
  *ctx.env.out << Json(counts) << "\n";
  for (const auto& token : response.tokens()) *ctx.env.out << Json(token) << "\n";
  return status;
}

int TokensCreate(const Context& ctx, client::Flags& flags, const std::string& user_id) {
  userservice::UserUpdateRequest item;
  item.set_operation(userservice::UserUpdateRequest::CREATE_TOKEN);
  item.set_user_id(user_id);
  item.set_token_description(flags.String("description"));
  if (flags.Has("expires-in")) {
    const int64_t ms = ParseDuration(flags.String("expires-in"));
    if (ms < 0) {
      flags.Fail("--expires-in: expected a duration like 30d, 12h, 90m or 3600s, got \"" +
                 flags.String("expires-in") + "\"");
      return -1;
    }
    item.set_token_expires_ms(NowMs() + ms);
  }
  userservice::UserUpdateResponse response;
  const int status = Update(ctx, {item}, &response);
  if (status != 0 || response.tokens_size() != 1) return 1;
  const userservice::CreatedToken& token = response.tokens(0);
  *ctx.env.out << token.token() << "\n";
  *ctx.env.err << "token " << token.token_id() << " for user " << token.user_id() << ", "
               << (token.expires_ms() == 0
                       ? std::string("no expiry")
                       : "expires at " + std::to_string(token.expires_ms()) + " (Unix ms)")
               << ": shown this once, store it now\n";
  return 0;
}

int TokensRevoke(const Context& ctx, const std::string& token_id) {
  userservice::UserUpdateRequest item;
  item.set_operation(userservice::UserUpdateRequest::REVOKE_TOKEN);
  item.set_token_id(token_id);
  userservice::UserUpdateResponse response;
  const int status = Update(ctx, {item}, &response);
  if (status == 0) *ctx.env.err << "token " << token_id << " revoked\n";
  return status;
}

int TokensList(const Context& ctx, const std::string& user_id) {
  auto stub = userservice::TokenService::NewStub(ctx.channel);
  userservice::TokenListRequest request;
  request.set_user_id(user_id);
  userservice::TokenList list;
  auto call = ctx.NewCall();
  const grpc::Status status = stub->ListTokens(call.get(), request, &list);
  if (!status.ok()) return ctx.Failed("ListTokens", status);
  for (const auto& token : list.tokens()) *ctx.env.out << Json(token) << "\n";
  return 0;
}

int Chat(const Context& ctx, client::Flags& flags) {
  const std::string to = flags.String("to");
  const auto linger = std::chrono::milliseconds(flags.Integer("linger-ms", 1000, 0, 600'000));
  if (!flags.error().empty()) return -1;
  auto stub = userservice::UserService::NewStub(ctx.channel);
  // No deadline on the chat itself (it stays open), so the connection is waited for first.
  if (!ctx.channel->WaitForConnected(std::chrono::system_clock::now() +
                                     std::chrono::milliseconds(ctx.timeout_ms))) {
    *ctx.env.err << "analytics_ctl: cannot reach " << client::DescribeServers(ctx.channel_options)
                 << " within " << ctx.timeout_ms << " ms\n";
    return 1;
  }
  grpc::ClientContext call;
  call.set_wait_for_ready(true);
  client::AddCredentials(ctx.channel_options, &call);
  auto stream = stub->ChatSupport(&call);
  // A message that cannot be written (a full disk, a closed pipe) would be lost in silence:
  // the reader cancels the call instead, so that the chat stops at the next line of input (a
  // write to a cancelled call fails) or at once when the input has ended.
  std::atomic<bool> output_failed{false};
  std::thread reader([&] {
    userservice::SupportMessage message;
    while (stream->Read(&message)) {
      *ctx.env.out << Json(message) << "\n" << std::flush;
      if (!*ctx.env.out) {
        output_failed = true;
        call.TryCancel();
        break;
      }
    }
  });
  std::string line;
  while (!ctx.env.interrupted->load() && !output_failed.load() && std::getline(*ctx.env.in, line)) {
    if (line.empty()) continue;
    userservice::SupportMessage message;
    message.set_to_user(to);
    if (line[0] == '@' && line.find(' ') != std::string::npos) {
      message.set_to_user(line.substr(1, line.find(' ') - 1));
      line = line.substr(line.find(' ') + 1);
    }
    message.set_text(line);
    if (!stream->Write(message)) break;
  }
  // The end of input: give answers a moment, then close our side (the server ends the stream).
  const auto until = std::chrono::steady_clock::now() + linger;
  while (!ctx.env.interrupted->load() && !output_failed.load() &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (ctx.env.interrupted->load()) call.TryCancel();
  stream->WritesDone();
  reader.join();
  const grpc::Status status = stream->Finish();
  if (output_failed.load()) {
    *ctx.env.err << "analytics_ctl: writing the messages failed; stopping\n";
    return 1;
  }
  if (!status.ok() && !ctx.env.interrupted->load()) return ctx.Failed("ChatSupport", status);
  return 0;
}

}  // namespace

int RunCtl(const std::vector<std::string>& args, const CtlEnvironment& env) {
  std::vector<std::string> value_flags = client::ConnectionValueFlags();
  for (const char* flag :
       {"timeout-ms", "role", "page-size", "expires-in", "description", "to", "linger-ms"}) {
    value_flags.push_back(flag);
  }
  std::vector<std::string> switches = client::ConnectionSwitches();
  switches.push_back("help");
  client::Flags flags(args, value_flags, switches);
  if (flags.Has("help") || args.empty()) {
    std::ostream& help = flags.Has("help") ? *env.out : *env.err;
    help << kUsage << client::kConnectionHelp;
    return flags.Has("help") ? 0 : 2;
  }
  Context ctx{env, {}, nullptr};
  client::ReadConnectionFlags(flags, &ctx.channel_options);
  std::string error;
  ctx.timeout_ms = flags.Integer("timeout-ms", 10'000, 100, 600'000);
  const std::vector<std::string>& words = flags.positional();
  auto usage = [&](const std::string& message) {
    *env.err << "analytics_ctl: " << message << " (see analytics_ctl --help)\n";
    return 2;
  };
  if (!flags.error().empty()) return usage(flags.error());
  ctx.channel = client::MakeChannel(ctx.channel_options, &error);
  if (ctx.channel == nullptr) return usage(error);
  const std::string command = words.empty() ? "" : words[0];
  const std::string sub = words.size() > 1 ? words[1] : "";
  const std::string arg = words.size() > 2 ? words[2] : "";
  int status = -2;
  if (command == "users" && sub == "list" && words.size() == 2) {
    status = UsersList(ctx, flags);
  } else if (command == "users" && sub == "get" && words.size() == 3) {
    status = UsersGet(ctx, arg);
  } else if (command == "users" && sub == "update" && words.size() == 2) {
    status = UsersUpdate(ctx);
  } else if (command == "tokens" && sub == "create" && words.size() == 3) {
    status = TokensCreate(ctx, flags, arg);
  } else if (command == "tokens" && sub == "revoke" && words.size() == 3) {
    status = TokensRevoke(ctx, arg);
  } else if (command == "tokens" && sub == "list" && words.size() <= 3) {
    status = TokensList(ctx, arg);
  } else if (command == "chat" && words.size() == 1) {
    status = Chat(ctx, flags);
  }
  if (status == -2) {
    std::string given;
    for (const std::string& word : words) given += (given.empty() ? "" : " ") + word;
    return usage("unknown command \"" + given + "\"");
  }
  if (status == -1) return usage(flags.error());
  return status;
}

}  // namespace rta::ctl
