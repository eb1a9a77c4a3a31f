// A deliberate data race on one of our objects, between our thread and code that gRPC runs on
// its own thread (the callback of a callback alarm). Built and run by the tsan preset only: the
// test passes when ThreadSanitizer reports the race with tests/tsan.supp in force, so that the
// suppressions can never again grow to hide races on our objects reached from gRPC callbacks.
#include <grpcpp/alarm.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

namespace {

struct Counter {
  long value = 0;
};

}  // namespace

int main() {
  Counter counter;
  // Relaxed on purpose: it tells the main thread when to go on without ordering `value`.
  std::atomic<bool> fired{false};
  {
    grpc::Alarm alarm;
    alarm.Set(std::chrono::system_clock::now() + std::chrono::milliseconds(10), [&](bool) {
      counter.value += 1;  // on gRPC's executor thread
      fired.store(true, std::memory_order_relaxed);
    });
    while (!fired.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    counter.value += 2;  // races with the callback's write: nothing orders the two
  }
  std::printf("value %ld\n", counter.value);
  return 0;
}
