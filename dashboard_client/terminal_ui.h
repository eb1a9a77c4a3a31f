#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "dashboard_client/history_view.h"
#include "dashboard_client/render.h"
#include "dashboard_client/subscription.h"
#include "dashboard_client/support_chat.h"

namespace rta::dashboard {

// The interactive dashboard on an ncurses (wide-character) terminal: applies the
// subscription's updates to the model, redraws a few times a second and on every key, follows
// terminal resizes, and restores the terminal on exit. Keys: w window, p pause, r reconnect,
// c support chat, ? help, q quit; t, f and b open the history view (history_view.h: a past
// range, a filter prompt, a breakdown table), whose queries `open_history` makes the first time
// and which asks again every 10 s. Returns the exit status (0). `quit` (set by SIGINT/SIGTERM)
// also ends it.
//
// The chat pane takes the keyboard while it is open (typed text, Enter sends, Ctrl-R
// reconnects, Esc closes it); `open_chat` makes its SupportChat the first time, and the chat
// stays connected (and keeps receiving) after the pane closes.
using ChatFactory = std::function<std::unique_ptr<SupportChat>()>;
using HistoryFactory = std::function<std::unique_ptr<HistoryQueries>()>;
int RunTerminalUi(Subscription& subscription, ViewState view, const ChatFactory& open_chat,
                  const HistoryFactory& open_history, const std::atomic<bool>& quit);

}  // namespace rta::dashboard
