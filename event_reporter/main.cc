// event_reporter: the command line that streams events into the analytics server.
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <string>
#include <vector>

#include "clients/common/interrupt.h"
#include "clients/common/stdout_check.h"
#include "event_reporter/cli.h"

int main(int argc, char** argv) {
  // Ctrl-C: stop reading or generating, deliver what is queued, print the summary.
  static std::atomic<bool> interrupted{false};
  rta::client::InstallInterruptHandlers(&interrupted);
  std::ios::sync_with_stdio(false);
  rta::reporter::CliEnvironment environment;
  environment.in = &std::cin;
  environment.err_is_terminal = isatty(STDERR_FILENO) == 1;
  environment.interrupted = &interrupted;
  const int status =
      rta::reporter::RunCli(std::vector<std::string>(argv + 1, argv + argc), environment);
  return rta::client::FinishStdout(status, "event_reporter");
}
