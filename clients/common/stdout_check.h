#pragma once

namespace rta::client {

// The exit status of a command-line client once its standard output is flushed: `status`, or
// 1 when the run passed but something it wrote to stdout did not land (a full disk, a closed
// pipe: SIGPIPE is ignored, see interrupt.h), with "PROGRAM: writing stdout failed" on stderr.
// Without it, `dashboard_client --once --json > snapshot.json` on a full disk would exit 0 with
// the snapshot lost (coreutils' close_stdout exists for the same reason). Call it once, at the
// end of main; it flushes both std::cout and C's stdout.
int FinishStdout(int status, const char* program);

}  // namespace rta::client
