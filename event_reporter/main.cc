// event_reporter: the command line that streams events into the analytics server.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "event_reporter/cli.h"

namespace {

std::atomic<bool> interrupted{false};

// First SIGINT/SIGTERM: stop reading, deliver what is queued, print the summary. Second: quit.
void OnSignal(int) {
  if (interrupted.exchange(true)) _exit(130);
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a blocked read of stdin returns, so input ends
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::ios::sync_with_stdio(false);
  rta::reporter::CliEnvironment environment;
  environment.in = &std::cin;
  environment.err_is_terminal = isatty(STDERR_FILENO) == 1;
  environment.interrupted = &interrupted;
  return rta::reporter::RunCli(std::vector<std::string>(argv + 1, argv + argc), environment);
}
