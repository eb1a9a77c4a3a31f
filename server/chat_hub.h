#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "user_service.pb.h"

namespace rta::server {

// Routes ChatSupport messages between the open streams and keeps the last ones for replay.
//
// Who sees a message: every admin, its sender, and the user it is addressed to. So an analyst's
// question reaches every admin (and the analyst's own streams, as the echo that carries the
// server's message_id), and an admin's answer reaches the asker and the other admins.
//
// Thread-safety: every method from any thread; one mutex (support chat is low traffic).
// Member::Deliver runs under that mutex and must not call back into the hub.
class ChatHub {
 public:
  class Member {
   public:
    Member(std::string user_id, bool admin) : user_id_(std::move(user_id)), admin_(admin) {}
    virtual ~Member() = default;
    // Queues one message for the stream; must not block.
    virtual void Deliver(const userservice::SupportMessage& message) = 0;
    const std::string& user_id() const { return user_id_; }
    bool admin() const { return admin_; }

   private:
    const std::string user_id_;
    const bool admin_;
  };

  // history: messages kept for replay; max_members: streams open at once.
  ChatHub(size_t history, size_t max_members)
      : history_limit_(history), max_members_(max_members) {}

  // Registers a stream and returns the kept messages it may see (marked replayed), oldest
  // first; false when max_members streams are open.
  bool Join(Member* member, std::vector<userservice::SupportMessage>* replay);
  void Leave(Member* member);
  // Stamps (id, sender, time), keeps and delivers a message; returns it as delivered.
  userservice::SupportMessage Post(const std::string& from_user, const std::string& to_user,
                                   const std::string& text, int64_t now_ms);

  size_t members() const;

 private:
  static bool Sees(const Member& member, const userservice::SupportMessage& message);

  const size_t history_limit_;
  const size_t max_members_;
  mutable std::mutex mutex_;
  std::unordered_set<Member*> members_;              // guarded by mutex_
  std::deque<userservice::SupportMessage> history_;  // guarded by mutex_
  uint64_t next_id_ = 1;                             // guarded by mutex_
};

}  // namespace rta::server
