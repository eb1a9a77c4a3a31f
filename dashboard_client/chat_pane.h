#pragma once

#include <string>

#include "dashboard_client/screen.h"
#include "dashboard_client/support_chat.h"

namespace rta::dashboard {

// Draws the support chat pane over the lower part of the dashboard (above the status lines):
// the newest messages that fit, oldest at the top ("12:04 ana: text", "12:05 admin → ana:
// text"), the link state, and the line being typed with its cursor. `input` is UTF-8.
void DrawChatPane(const ChatStatus& chat, const std::string& input, Screen* screen);

// Edits the typed line for one key from the terminal (a byte of UTF-8, or Backspace): appends
// printable bytes up to SupportChat::kMaxText, removes the last whole character on Backspace.
// Returns false for keys it does not take (Enter, Esc, function keys).
bool EditChatInput(int key, std::string* input);

}  // namespace rta::dashboard
