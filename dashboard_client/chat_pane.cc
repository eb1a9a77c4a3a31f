#include "dashboard_client/chat_pane.h"

#include <algorithm>
#include <ctime>

#include "dashboard_client/format.h"

namespace rta::dashboard {
namespace {

constexpr int kBackspace = 263;  // curses KEY_BACKSPACE, without including curses here

// "14:05" in local time, as the clock on the analyst's wall.
std::string ClockTime(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&seconds, &tm);
  char text[8];
  std::strftime(text, sizeof text, "%H:%M", &tm);
  return text;
}

}  // namespace

void DrawChatPane(const ChatStatus& chat, const std::string& input, Screen* screen) {
  const int width = screen->width();
  // Above the message line and the status line; at most half the screen, at least 6 rows.
  const int bottom = screen->height() - 2;
  const int height = std::clamp(screen->height() / 2, 6, 14);
  const int top = std::max(bottom - height, 1);
  for (int row = top; row < bottom; ++row) screen->Fill(0, row, width, L' ', Style::kNormal);
  screen->Box(0, top, width, bottom - top, "Support chat", Style::kHeader, Style::kHeader);
  const std::string keys = " Enter sends · @user text answers a user · Esc closes ";
  if (static_cast<int>(DisplayWidth(keys)) + 20 <= width) {
    screen->PutRight(width - 1, top, keys, Style::kDim);
  }
  const int inner = width - 4;
  // The link state or the last problem, on the first inner row.
  std::string state;
  Style state_style = Style::kWarn;
  switch (chat.link) {
    case LinkState::kConnecting:
      state = "● connecting";
      break;
    case LinkState::kConnected:
      state = "● connected";
      state_style = Style::kGood;
      break;
    case LinkState::kReconnecting:
      state = "● reconnecting";
      break;
    case LinkState::kRefused:
      state = "● refused (Ctrl-R retries)";
      state_style = Style::kBad;
      break;
  }
  screen->Put(2, top + 1, state, state_style, inner);
  // The last problem (a refusal, a message not sent) beside it, or on its own row when the
  // two do not fit side by side.
  int first_row = top + 2;
  if (!chat.message.empty()) {
    const Style style = chat.link == LinkState::kRefused ? Style::kBad : Style::kWarn;
    const int used = static_cast<int>(DisplayWidth(state)) + 3;
    if (used + static_cast<int>(DisplayWidth(chat.message)) <= inner) {
      screen->Put(2 + used, top + 1, chat.message, style, inner - used);
    } else {
      screen->Put(2, top + 2, chat.message, style, inner);
      ++first_row;
    }
  }
  // Messages: the newest at the bottom, as many as the rows between allow.
  const int input_row = bottom - 2;
  const int rows = input_row - first_row;
  const size_t shown = std::min(chat.lines.size(), static_cast<size_t>(std::max(rows, 0)));
  if (chat.lines.empty() && rows > 0) {
    screen->Put(2, first_row, "(no messages yet: a question here reaches every admin)", Style::kDim,
                inner);
  }
  for (size_t i = 0; i < shown; ++i) {
    const ChatLine& line = chat.lines[chat.lines.size() - shown + i];
    const int y = first_row + static_cast<int>(i);
    const std::string head = ClockTime(line.timestamp_ms) + " " + line.from +
                             (line.to.empty() ? "" : " → " + line.to) + ": ";
    screen->Put(2, y, head, Style::kHeader, inner);
    const int used = static_cast<int>(DisplayWidth(head));
    if (used < inner) screen->Put(2 + used, y, line.text, Style::kNormal, inner - used);
  }
  // The line being typed: its end when it is longer than the row, and a block as the cursor.
  const std::string prompt = "> ";
  std::wstring typed = DecodeUtf8(input);
  const size_t room = static_cast<size_t>(std::max(inner - 3, 1));
  if (typed.size() > room) typed = typed.substr(typed.size() - room);
  screen->Put(2, input_row, prompt + EncodeUtf8(typed) + "█", Style::kNormal, inner);
}

bool EditChatInput(int key, std::string* input) {
  if (key == kBackspace || key == 127 || key == 8) {
    // Drop continuation bytes (10xxxxxx), then the lead byte: one whole character.
    while (!input->empty() && (static_cast<unsigned char>(input->back()) & 0xC0) == 0x80) {
      input->pop_back();
    }
    if (!input->empty()) input->pop_back();
    return true;
  }
  if (key < 0x20 || key > 0xFF || key == 0x7F) return false;  // control and function keys
  if (input->size() >= SupportChat::kMaxText) return true;    // full: the key is swallowed
  input->push_back(static_cast<char>(key));
  return true;
}

}  // namespace rta::dashboard
