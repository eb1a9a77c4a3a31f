#include "dashboard_client/support_chat.h"

#include <algorithm>

namespace rta::dashboard {
namespace {

using Clock = std::chrono::steady_clock;

std::string Describe(const grpc::Status& status, const std::string& servers) {
  const std::string code = client::StatusCodeName(status.error_code());
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return "chat: server unreachable at " + servers + " (" + code + ")";
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return "chat refused: " + status.error_message() + " (" + code + ")";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "not sent: " + status.error_message();
    default:
      return "chat: " + status.error_message() + " (" + code + ")";
  }
}

}  // namespace

SupportChat::SupportChat(std::shared_ptr<grpc::Channel> channel, client::ChannelOptions options)
    : stub_(userservice::UserService::NewStub(std::move(channel))), options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

SupportChat::~SupportChat() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  wake_.notify_all();
  thread_.join();
}

bool SupportChat::Send(const std::string& line) {
  userservice::SupportMessage message;
  std::string text = line;
  if (text.size() > 1 && text[0] == '@' && text.find(' ') != std::string::npos) {
    message.set_to_user(text.substr(1, text.find(' ') - 1));
    text = text.substr(text.find(' ') + 1);
  }
  std::lock_guard lock(mutex_);
  if (text.empty()) {
    status_.message = "nothing to send";
    return false;
  }
  if (text.size() > kMaxText) {
    status_.message = "a message holds at most " + std::to_string(kMaxText) + " bytes";
    return false;
  }
  if (stream_ == nullptr) {
    status_.message = "not connected: the message was not sent";
    return false;
  }
  message.set_text(text);
  // A small message on an open stream: the write does not wait for the server to read it.
  if (!stream_->Write(message)) {
    status_.message = "the chat stream broke: the message was not sent";
    return false;
  }
  status_.message.clear();
  return true;
}

ChatStatus SupportChat::Status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

void SupportChat::Reconnect() {
  std::lock_guard lock(mutex_);
  reconnect_now_ = true;
  if (context_ != nullptr) context_->TryCancel();
  wake_.notify_all();
}

void SupportChat::Keep(const userservice::SupportMessage& message) {
  if (!message.message_id().empty() && !ids_.insert(message.message_id()).second) return;
  status_.lines.push_back(
      {message.from_user(), message.to_user(), message.text(), message.timestamp_ms()});
  kept_ids_.push_back(message.message_id());
  if (status_.lines.size() > kKeptLines) {
    status_.lines.erase(status_.lines.begin());
    ids_.erase(kept_ids_.front());
    kept_ids_.pop_front();
  }
}

bool SupportChat::WaitUntil(Clock::time_point until) {
  std::unique_lock lock(mutex_);
  wake_.wait_until(lock, until, [&] { return stopping_ || reconnect_now_; });
  reconnect_now_ = false;
  return !stopping_;
}

void SupportChat::Run() {
  auto backoff = std::chrono::milliseconds(500);
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      reconnect_now_ = false;
      status_.link = LinkState::kConnecting;
    }
    bool joined = false;
    const grpc::Status status = RunStream(&joined);
    if (joined) backoff = std::chrono::milliseconds(500);
    const std::string servers = client::DescribeServers(options_);
    const grpc::StatusCode code = status.error_code();
    const bool refused =
        code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      status_.link = refused ? LinkState::kRefused : LinkState::kReconnecting;
      status_.message =
          status.ok() ? "chat: the server ended the stream" : Describe(status, servers);
      // A message the server refused (it ends the stream) stays on screen after the reconnect:
      // it says why that message is not in the chat. Link problems go once connected again.
      message_outlives_stream_ = code == grpc::StatusCode::INVALID_ARGUMENT;
    }
    // A refusal waits for Reconnect(); anything else (the server away, a message it refused)
    // comes back after the backoff.
    const auto until = refused ? Clock::time_point::max() : Clock::now() + backoff;
    if (!WaitUntil(until)) return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
  }
}

grpc::Status SupportChat::RunStream(bool* joined) {
  grpc::ClientContext context;
  client::AddCredentials(options_, &context);
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return grpc::Status::CANCELLED;
    context_ = &context;  // from here the destructor's TryCancel reaches this call
  }
  // Outside the lock: starting the call waits for a connection attempt, and the UI thread
  // takes the lock every frame. A cancel that comes first is applied as the call starts.
  std::unique_ptr<Stream> stream = stub_->ChatSupport(&context);
  // The server sends its initial metadata once the stream has joined the chat.
  stream->WaitForInitialMetadata();
  {
    std::lock_guard lock(mutex_);
    stream_ = stream.get();
    ++status_.connections;
    status_.link = LinkState::kConnected;
    if (!message_outlives_stream_) status_.message.clear();
    message_outlives_stream_ = false;
  }
  userservice::SupportMessage message;
  while (stream->Read(&message)) {
    *joined = true;
    std::lock_guard lock(mutex_);
    Keep(message);
  }
  {
    std::lock_guard lock(mutex_);
    stream_ = nullptr;  // no Send writes from here on
    context_ = nullptr;
  }
  return stream->Finish();
}

}  // namespace rta::dashboard
