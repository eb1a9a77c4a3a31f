#pragma once

#include <string>
#include <vector>

#include "event_reporter/cli.h"

namespace rta::reporter {

// `event_reporter replay ...` (args exclude the mode's name). Returns the exit status.
int RunReplay(const std::vector<std::string>& args, const CliEnvironment& environment);

}  // namespace rta::reporter
