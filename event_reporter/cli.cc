#include "event_reporter/cli.h"

#include <cstdio>

#include "event_reporter/generate_mode.h"
#include "event_reporter/replay_mode.h"
#include "event_reporter/send_mode.h"

namespace rta::reporter {
namespace {

constexpr char kUsage[] = R"(event_reporter: stream events into the analytics server.

Usage:
  event_reporter replay FILE|- [flags]   send JSON Lines events from a file or stdin
  event_reporter generate [flags]        send (or --output) realistic synthetic website traffic
  event_reporter send --type T [flags]   send one event built from flags
  event_reporter MODE --help             flags of a mode, with examples

Exit status: 0 every event delivered; 1 a line or event was refused, events could not be
delivered, or the input could not be read or the output written; 2 bad usage; 3 interrupted
(Ctrl-C, SIGTERM) before everything read was acknowledged (a replay of a file prints the
--from-line flag that resumes it); 130 a second Ctrl-C.
)";

}  // namespace

int RunCli(const std::vector<std::string>& args, const CliEnvironment& environment) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? environment.err : environment.out);
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "replay") return RunReplay(rest, environment);
  if (args[0] == "generate") return RunGenerate(rest, environment);
  if (args[0] == "send") return RunSend(rest, environment);
  std::fprintf(environment.err, "event_reporter: unknown mode \"%s\"\n%s", args[0].c_str(), kUsage);
  return 2;
}

}  // namespace rta::reporter
