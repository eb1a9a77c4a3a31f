#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "event_reporter/reporter.h"

namespace rta::reporter {

// "1:05" or "1:02:03": elapsed time and ETA on the progress line.
std::string ClockText(double seconds);

// A live progress line on stderr (sent, acknowledged, rejected, retries, events/s, ETA),
// redrawn four times a second by its own thread while a delivery runs. Reads only the
// Reporter's counters, which are thread-safe. Stop() (or the destructor) ends the thread and
// clears the line; with `enabled` false it does nothing at all.
class ProgressLine {
 public:
  // done_fraction: how far the input is, from 0 to 1, for the ETA (nullopt: unknown).
  ProgressLine(FILE* err, bool enabled, const Reporter& reporter,
               std::function<std::optional<double>()> done_fraction);
  ~ProgressLine() { Stop(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void Stop();

 private:
  void Run();

  FILE* err_;
  const Reporter& reporter_;
  std::function<std::optional<double>()> done_fraction_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace rta::reporter
