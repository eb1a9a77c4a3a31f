// analytics_ctl: the administrators' command line (users, tokens, the support chat).
#include <atomic>
#include <iostream>
#include <string>
#include <vector>

#include "analytics_ctl/ctl.h"
#include "clients/common/interrupt.h"
#include "clients/common/stdout_check.h"

int main(int argc, char** argv) {
  static std::atomic<bool> interrupted{false};
  rta::client::InstallInterruptHandlers(&interrupted);
  rta::ctl::CtlEnvironment environment;
  environment.in = &std::cin;
  environment.out = &std::cout;
  environment.err = &std::cerr;
  environment.interrupted = &interrupted;
  const int status = rta::ctl::RunCtl(std::vector<std::string>(argv + 1, argv + argc), environment);
  return rta::client::FinishStdout(status, "analytics_ctl");
}
