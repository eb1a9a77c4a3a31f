#pragma once

#include <atomic>

namespace rta::client {

// SIGINT/SIGTERM for the command-line clients. The first sets *interrupted, and the program
// finishes in order (delivers what is queued, restores the terminal, prints its summary). A
// second one at least half a second later quits at once with status 130. Two arriving closer
// together are one interruption delivered twice: `timeout`, for one, signals both the process
// and its process group. Installed without SA_RESTART, so a blocked read of stdin returns and
// input ends. Also ignores SIGPIPE (a closed pipe shows up as a write error instead).
// `interrupted` must outlive the process's signal handling (a static).
void InstallInterruptHandlers(std::atomic<bool>* interrupted);

}  // namespace rta::client
