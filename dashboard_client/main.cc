// dashboard_client: the live terminal dashboard of the analytics server.
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "clients/common/interrupt.h"
#include "clients/common/stdout_check.h"
#include "dashboard_client/dashboard_cli.h"

int main(int argc, char** argv) {
  // SIGINT/SIGTERM end the dashboard through its normal exit, so the terminal is restored.
  static std::atomic<bool> quit{false};
  rta::client::InstallInterruptHandlers(&quit);
  const int status = rta::dashboard::RunDashboardCli(
      std::vector<std::string>(argv + 1, argv + argc), isatty(STDOUT_FILENO) == 1, quit);
  return rta::client::FinishStdout(status, "dashboard_client");
}
