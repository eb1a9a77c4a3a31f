// dashboard_client: the live terminal dashboard of the analytics server.
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "dashboard_client/dashboard_cli.h"
#include "clients/common/interrupt.h"

int main(int argc, char** argv) {
  // SIGINT/SIGTERM end the dashboard through its normal exit, so the terminal is restored.
  static std::atomic<bool> quit{false};
  rta::client::InstallInterruptHandlers(&quit);
  return rta::dashboard::RunDashboardCli(std::vector<std::string>(argv + 1, argv + argc),
                                         isatty(STDOUT_FILENO) == 1, quit);
}
