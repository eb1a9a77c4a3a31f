#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "event_reporter/cli.h"
#include "clients/common/flags.h"
#include "event_reporter/progress_line.h"
#include "event_reporter/reporter.h"

// What the modes of the command line (replay_mode, generate_mode, send_mode) share: the
// delivery flags and their help text, usage errors, and Delivery (channel, Reporter, progress
// line, summary, exit status).
namespace rta::reporter::detail {

extern const std::string kDeliveryFlagsHelp;
extern const std::vector<std::string> kDeliveryValueFlags;  // --server, --batch-size, ...
extern const std::vector<std::string> kDeliverySwitches;    // --no-batch, --json, --help, ...

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b);

// Wall-clock Unix milliseconds: event times.
int64_t NowMs();

// Whether the first SIGINT/SIGTERM has arrived.
bool Interrupted(const CliEnvironment& environment);

// Prints the message and where to read the mode's flags; returns 2 (bad usage).
int UsageError(const CliEnvironment& environment, const std::string& message, const char* mode);

// The end of a delivery, as the summary shows it.
struct RunOutcome {
  std::string mode;
  DeliveryStats stats;
  uint64_t invalid_lines = 0;
  double elapsed_seconds = 0;
  std::string fatal_error;
  nlohmann::json extra = nlohmann::json::object();  // mode-specific fields (seed, input, ...)
  // Interrupted: the input is a file that --from-line can resume, and the first of its lines
  // not read (0: read to its end).
  bool resumable = false;
  uint64_t first_unread_line = 0;
  // Interrupted before every event read (or the whole file) was acknowledged: exit status 3.
  bool incomplete = false;
};

// Prints the summary (a line of text, or one JSON object) on environment.out, and the fatal
// error on environment.err. Returns the exit status: 0 when every event was accepted or was a
// duplicate, kExitInterrupted when interrupted before everything was acknowledged, 1 otherwise.
int PrintSummary(const RunOutcome& outcome, bool as_json, const CliEnvironment& environment);

// What every sending mode does around its input: reads the delivery flags, makes the channel
// and the Reporter, shows the progress line, and prints the summary. Used from the mode's own
// thread only.
class Delivery {
 public:
  // Reads the delivery flags now; a bad one is recorded in `flags` (check flags.error()).
  Delivery(std::string mode, client::Flags& flags, const CliEnvironment& environment);

  // Makes the channel (it connects lazily); false with the reason on stderr when the address
  // or the CA file is bad. done_fraction feeds the ETA on the progress line.
  bool Start(std::function<std::optional<double>()> done_fraction);

  Reporter& reporter() { return *reporter_; }
  RunOutcome& outcome() { return outcome_; }

  // Waits until every event is acknowledged or given up on; prints the summary; returns the
  // exit status.
  int Finish();

 private:
  const CliEnvironment& environment_;
  DeliveryOptions options_;
  RunOutcome outcome_;
  bool as_json_ = false;
  bool progress_enabled_ = false;
  std::chrono::steady_clock::time_point start_;
  std::unique_ptr<Reporter> reporter_;
  std::unique_ptr<ProgressLine> progress_;
};

}  // namespace rta::reporter::detail
