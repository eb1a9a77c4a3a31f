#include "clients/common/interrupt.h"

#include <time.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>

namespace rta::client {
namespace {

// A signal handler can only reach state through globals; these two are its whole state.
std::atomic<bool>* g_interrupted = nullptr;
std::atomic<int64_t> g_first_signal_ns{0};

void OnSignal(int) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  const int64_t ns = static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  int64_t first = 0;
  if (g_first_signal_ns.compare_exchange_strong(first, ns)) {
    if (g_interrupted != nullptr) g_interrupted->store(true);
    return;
  }
  if (ns - first >= 500'000'000) _exit(130);
}

}  // namespace

void InstallInterruptHandlers(std::atomic<bool>* interrupted) {
  g_interrupted = interrupted;
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

}  // namespace rta::client
