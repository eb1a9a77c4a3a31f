// dashboard_client: the live terminal dashboard of the analytics server.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <string>
#include <vector>

#include "dashboard_client/dashboard_cli.h"

namespace {

std::atomic<bool> quit{false};

// SIGINT/SIGTERM end the dashboard through its normal exit, so the terminal is restored.
// A second one quits at once.
void OnSignal(int) {
  if (quit.exchange(true)) _exit(130);
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return rta::dashboard::RunDashboardCli(std::vector<std::string>(argv + 1, argv + argc),
                                         isatty(STDOUT_FILENO) == 1, quit);
}
