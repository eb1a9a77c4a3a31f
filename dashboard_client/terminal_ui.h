#pragma once

#include <atomic>

#include "dashboard_client/render.h"
#include "dashboard_client/subscription.h"

namespace rta::dashboard {

// The interactive dashboard on an ncurses (wide-character) terminal: applies the
// subscription's updates to the model, redraws a few times a second and on every key, follows
// terminal resizes, and restores the terminal on exit. Keys: w window, p pause, r reconnect,
// ? help, q quit. Returns the exit status (0). `quit` (set by SIGINT/SIGTERM) also ends it.
int RunTerminalUi(Subscription& subscription, ViewState view, const std::atomic<bool>& quit);

}  // namespace rta::dashboard
