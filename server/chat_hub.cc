#include "server/chat_hub.h"

namespace rta::server {

bool ChatHub::Sees(const Member& member, const userservice::SupportMessage& message) {
  return member.admin() || message.from_user() == member.user_id() ||
         message.to_user() == member.user_id();
}

bool ChatHub::Join(Member* member, std::vector<userservice::SupportMessage>* replay) {
  std::lock_guard lock(mutex_);
  if (members_.size() >= max_members_) return false;
  members_.insert(member);
  for (const userservice::SupportMessage& message : history_) {
    if (!Sees(*member, message)) continue;
    replay->push_back(message);
    replay->back().set_replayed(true);
  }
  return true;
}

void ChatHub::Leave(Member* member) {
  std::lock_guard lock(mutex_);
  members_.erase(member);
}

userservice::SupportMessage ChatHub::Post(const std::string& from_user, const std::string& to_user,
                                          const std::string& text, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  userservice::SupportMessage message;
  message.set_message_id("m" + std::to_string(next_id_++));
  message.set_from_user(from_user);
  message.set_to_user(to_user);
  message.set_text(text);
  message.set_timestamp_ms(now_ms);
  history_.push_back(message);
  if (history_.size() > history_limit_) history_.pop_front();
  for (Member* member : members_) {
    if (Sees(*member, message)) member->Deliver(message);
  }
  return message;
}

size_t ChatHub::members() const {
  std::lock_guard lock(mutex_);
  return members_.size();
}

}  // namespace rta::server
