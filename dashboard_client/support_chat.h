#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "clients/common/client_channel.h"
#include "dashboard_client/render.h"
#include "user_service.grpc.pb.h"

namespace rta::dashboard {

// One chat message as the pane shows it.
struct ChatLine {
  std::string from;  // the sender's user_id
  std::string to;    // "" for a question to every admin
  std::string text;
  int64_t timestamp_ms = 0;
};

// What the UI thread takes from the chat at each frame.
struct ChatStatus {
  LinkState link = LinkState::kConnecting;
  std::string message;  // why we are not connected, or why the last send failed ("" when none)
  std::vector<ChatLine> lines;  // oldest first, at most SupportChat::kKeptLines
  uint64_t connections = 0;     // streams opened so far (a reconnect adds one)
};

// The dashboard's support chat: one userservice.UserService/ChatSupport stream on its own
// thread. An analyst's messages reach every admin; an admin answers with "@user text".
//
// The stream is kept open: when it ends (the server went away, or it refused a message), it
// reconnects with backoff, and the messages the server replays on join are told apart from
// those already shown by their message_id, so nothing shows twice. A refusal that retrying
// cannot fix (no token, no analyst role) waits for Reconnect(). Thread-safe: Send and Status
// from the UI thread, the stream on the chat's thread; the destructor cancels and joins.
class SupportChat {
 public:
  static constexpr size_t kKeptLines = 200;
  static constexpr size_t kMaxText = 4096;  // the server's limit for one message

  SupportChat(std::shared_ptr<grpc::Channel> channel, client::ChannelOptions options);
  ~SupportChat();
  SupportChat(const SupportChat&) = delete;
  SupportChat& operator=(const SupportChat&) = delete;

  // Sends a typed line: "@user text" addresses it to that user (how an admin answers), anything
  // else goes to every admin. False, with the reason in Status().message, when the line is
  // empty or too long or the chat is not connected.
  bool Send(const std::string& line);
  ChatStatus Status() const;
  // Drops the current stream (if any) and connects again at once.
  void Reconnect();

 private:
  using Stream = grpc::ClientReaderWriter<userservice::SupportMessage, userservice::SupportMessage>;
  void Run();
  grpc::Status RunStream(bool* joined);
  void Keep(const userservice::SupportMessage& message);  // mutex_ held
  bool WaitUntil(std::chrono::steady_clock::time_point until);

  std::unique_ptr<userservice::UserService::Stub> stub_;
  const client::ChannelOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                   // guarded by mutex_
  bool reconnect_now_ = false;              // guarded by mutex_
  grpc::ClientContext* context_ = nullptr;  // the open stream's, guarded by mutex_
  // The open stream while it may be written to; Send writes under mutex_, so the chat thread
  // clears it (under mutex_) before it calls Finish and no write overlaps the end of the call.
  Stream* stream_ = nullptr;              // guarded by mutex_
  ChatStatus status_;                     // guarded by mutex_
  bool message_outlives_stream_ = false;  // guarded by mutex_
  std::deque<std::string> kept_ids_;      // message_ids of status_.lines, same order
  std::unordered_set<std::string> ids_;   // the same ids, for lookups
  std::thread thread_;
};

}  // namespace rta::dashboard
