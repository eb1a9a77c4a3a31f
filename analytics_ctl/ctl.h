#pragma once

#include <atomic>
#include <iosfwd>
#include <string>
#include <vector>

namespace rta::ctl {

// Where analytics_ctl reads and writes; tests pass string streams.
struct CtlEnvironment {
  std::istream* in = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  const std::atomic<bool>* interrupted = nullptr;  // Ctrl-C: stop the chat
};

// analytics_ctl ARGS: users list|get|update, tokens create|revoke|list, chat (see kUsage in
// ctl.cc). Returns the exit status: 0 done, 1 the server refused or failed (its message on
// err), 2 a usage error.
int RunCtl(const std::vector<std::string>& args, const CtlEnvironment& environment);

}  // namespace rta::ctl
