// A thread of ours that finishes and is never joined, in a process that runs gRPC (and so has
// gRPC's own threads). Built and run by the tsan preset only: the test passes when
// ThreadSanitizer reports the leak with tests/tsan.supp in force, so that the suppression of
// gRPC's unjoined threads (section 10, matched on grpc_core::Thread in the creation stack) can
// never grow to hide a thread of ours left unjoined.
#include <grpcpp/alarm.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

namespace {

std::atomic<bool> g_done{false};

void* Finish(void*) {
  g_done.store(true);
  return nullptr;
}

}  // namespace

int main() {
  // gRPC running, with its timer and executor threads: the leak below is reported among them.
  std::atomic<bool> fired{false};
  grpc::Alarm alarm;
  alarm.Set(std::chrono::system_clock::now() + std::chrono::milliseconds(10),
            [&](bool) { fired.store(true); });
  pthread_t thread;
  if (pthread_create(&thread, nullptr, &Finish, nullptr) != 0) return 1;
  while (!g_done.load() || !fired.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the thread has returned
  std::printf("left thread unjoined\n");
  return 0;  // no pthread_join: ThreadSanitizer reports a thread leak at exit
}
