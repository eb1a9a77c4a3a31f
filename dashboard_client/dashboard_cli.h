#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace rta::dashboard {

// Runs `dashboard_client [flags]` (args exclude the program name): the terminal dashboard, or
// with --once / --plain the script modes. `quit` is set by SIGINT/SIGTERM. Returns the exit
// status: 0, 1 (server unreachable or refusing, in --once), 2 (bad usage).
int RunDashboardCli(const std::vector<std::string>& args, bool stdout_is_terminal,
                    const std::atomic<bool>& quit);

}  // namespace rta::dashboard
