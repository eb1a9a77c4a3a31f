#include "event_reporter/cli_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "clients/common/client_channel.h"
#include "clients/common/number_text.h"

namespace rta::reporter::detail {
namespace {

using client::Flags;
using client::WithThousands;
using nlohmann::json;

// Reads the delivery flags; records errors in `flags`.
DeliveryOptions ReadDeliveryOptions(Flags& flags, const CliEnvironment& environment) {
  DeliveryOptions options;
  client::ReadConnectionFlags(flags, &options.channel);
  const std::string protocol = flags.String("protocol", "publish");
  if (protocol == "publish") {
    options.protocol = Protocol::kPublish;
  } else if (protocol == "batches") {
    options.protocol = Protocol::kBatches;
  } else {
    flags.Fail("--protocol: expected publish or batches, got \"" + protocol + "\"");
  }
  if (flags.Has("no-batch")) options.protocol = Protocol::kEvents;
  options.window_batches = flags.Integer("window-batches", 8, 1, 1'024);
  options.window_bytes = flags.Integer("window-bytes", 8 * 1024 * 1024, 1'024, int64_t{1} << 32);
  options.drain = std::chrono::milliseconds(flags.Integer("drain-ms", 5'000, 0, 3'600'000));
  options.interrupted = environment.interrupted;
  options.batch_events = flags.Integer("batch-size", 500, 1, 10'000);
  options.batch_bytes = flags.Integer("batch-bytes", 512 * 1024, 1'024, 4 * 1024 * 1024 - 1'024);
  options.linger = std::chrono::milliseconds(flags.Integer("linger-ms", 20, 0, 60'000));
  options.streams = static_cast<int>(flags.Integer("streams", 2, 1, 64));
  options.stream_events = flags.Integer("stream-events", 50'000, 1, 10'000'000);
  options.deadline =
      std::chrono::milliseconds(flags.Integer("deadline-ms", 30'000, 100, 86'400'000));
  options.give_up_after =
      std::chrono::milliseconds(flags.Integer("give-up-after", 300, 0, 86'400) * 1'000);
  FILE* err = environment.err;
  // On a terminal a message first clears the progress line it would otherwise run into.
  if (environment.err_is_terminal) {
    options.log = [err](const std::string& message) {
      std::fprintf(err, "\r\033[Kevent_reporter: %s\n", message.c_str());
    };
  } else {
    options.log = [err](const std::string& message) {
      std::fprintf(err, "event_reporter: %s\n", message.c_str());
    };
  }
  return options;
}

}  // namespace

const char kDeliveryOnlyHelp[] =
    R"(  --protocol P          publish (default): PublishEvents, every batch acknowledged once
                        durable, a window of batches in flight, only unacknowledged batches
                        re-sent after a broken stream; batches: ReportEventBatches, a stream's
                        events acknowledged when the stream ends
  --no-batch            one event per message (ReportEvent) instead of batches
  --window-batches N    publish: unacknowledged batches per stream, default 8 (the server
                        remembers a producer's last 8 batches: a larger window may count
                        re-sent events as duplicates)
  --window-bytes N      publish: unacknowledged bytes per stream, default 8388608
  --drain-ms N          after Ctrl-C / SIGTERM: how long to wait for acknowledgements of what
                        was read, default 5000
  --batch-size N        events per batch message, default 500
  --batch-bytes N       bytes per batch message, default 524288 (lowered by itself to a
                        server whose --max-message-bytes is smaller)
  --linger-ms N         how long a batch waits to fill up, default 20
  --streams N           concurrent streams, default 2
  --stream-events N     batches: events per stream before it is closed and acknowledged,
                        default 50000
  --deadline-ms N       batches: deadline of one stream; publish: the longest wait for an
                        acknowledgement before the stream counts as broken; default 30000
  --give-up-after S     stop retrying after S seconds of failures, default 300
  --quiet               no progress line
  --json                print the final summary as JSON
A failed stream's unacknowledged events are re-sent with exponential backoff; every event
carries an id (and with publish every batch a sequence), so the server counts each exactly
once. An acknowledgement must account for every event of its batch or stream (accepted +
duplicates + rejected), and with publish name the oldest unacknowledged batch; one that does
not is an "ack mismatch", handled like a failed stream: the events are re-sent (5 mismatches in
a row stop the delivery).
Ctrl-C or SIGTERM stops reading at once, delivers what was read for at most --drain-ms, and
prints what was acknowledged; when something was not, the exit status is 3 and a replay of a
file names the first line not acknowledged and the --from-line flag that resumes there. A
second Ctrl-C quits at once (status 130).
)";

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::string kDeliveryFlagsHelp = std::string("\nDelivery (every mode that sends):\n") +
                                       client::kConnectionHelp + kDeliveryOnlyHelp;
const std::vector<std::string> kDeliveryValueFlags =
    Concat(client::ConnectionValueFlags(),
           {"batch-size", "batch-bytes", "linger-ms", "streams", "stream-events", "deadline-ms",
            "give-up-after", "protocol", "window-batches", "window-bytes", "drain-ms"});
const std::vector<std::string> kDeliverySwitches =
    Concat(client::ConnectionSwitches(), {"no-batch", "quiet", "json", "help"});

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Interrupted(const CliEnvironment& environment) {
  return environment.interrupted != nullptr && environment.interrupted->load();
}

int UsageError(const CliEnvironment& environment, const std::string& message, const char* mode) {
  std::fprintf(environment.err, "event_reporter: %s\n(see: event_reporter %s --help)\n",
               message.c_str(), mode);
  return 2;
}

int PrintSummary(const RunOutcome& outcome, bool as_json, const CliEnvironment& environment) {
  const DeliveryStats& stats = outcome.stats;
  const double rate = stats.sent / std::max(outcome.elapsed_seconds, 1e-3);
  if (as_json) {
    json summary = {{"mode", outcome.mode},
                    {"sent", stats.sent},
                    {"accepted", stats.accepted},
                    {"duplicates", stats.duplicates},
                    {"rejected", stats.rejected},
                    {"failed", stats.failed},
                    {"retries", stats.retries},
                    {"ack_mismatches", stats.ack_mismatches},
                    {"unacknowledged", stats.unacknowledged},
                    {"invalid_lines", outcome.invalid_lines},
                    {"elapsed_seconds", std::round(outcome.elapsed_seconds * 1000) / 1000},
                    {"events_per_second", std::round(rate)}};
    if (!outcome.fatal_error.empty()) summary["error"] = outcome.fatal_error;
    summary.update(outcome.extra);
    std::fprintf(environment.out, "%s\n", summary.dump().c_str());
  } else {
    std::fprintf(environment.out,
                 "%s: %s sent, %s accepted, %s duplicates, %s rejected, %s failed, %s retries, "
                 "%s ack mismatches, %s invalid lines in %.1f s (%s events/s)\n",
                 outcome.mode.c_str(), WithThousands(stats.sent).c_str(),
                 WithThousands(stats.accepted).c_str(), WithThousands(stats.duplicates).c_str(),
                 WithThousands(stats.rejected).c_str(), WithThousands(stats.failed).c_str(),
                 WithThousands(stats.retries).c_str(), WithThousands(stats.ack_mismatches).c_str(),
                 WithThousands(outcome.invalid_lines).c_str(), outcome.elapsed_seconds,
                 WithThousands(static_cast<uint64_t>(rate)).c_str());
    for (const auto& [key, value] : outcome.extra.items()) {
      std::fprintf(environment.out, "  %s: %s\n", key.c_str(),
                   value.is_string() ? value.get<std::string>().c_str() : value.dump().c_str());
    }
  }
  if (!outcome.fatal_error.empty()) {
    std::fprintf(environment.err, "event_reporter: %s\n", outcome.fatal_error.c_str());
  }
  std::fflush(environment.out);
  if (outcome.incomplete && outcome.fatal_error.empty()) return kExitInterrupted;
  const bool clean = stats.rejected == 0 && stats.failed == 0 && outcome.invalid_lines == 0 &&
                     outcome.fatal_error.empty();
  return clean ? 0 : 1;
}

Delivery::Delivery(std::string mode, Flags& flags, const CliEnvironment& environment)
    : environment_(environment), options_(ReadDeliveryOptions(flags, environment)) {
  outcome_.mode = std::move(mode);
  as_json_ = flags.Has("json");
  progress_enabled_ = environment.err_is_terminal && !flags.Has("quiet");
}

bool Delivery::Start(std::function<std::optional<double>()> done_fraction) {
  std::string error;
  std::shared_ptr<grpc::Channel> channel = client::MakeChannel(options_.channel, &error);
  if (!channel) {
    std::fprintf(environment_.err, "event_reporter: %s\n", error.c_str());
    return false;
  }
  start_ = std::chrono::steady_clock::now();
  reporter_ = std::make_unique<Reporter>(std::move(channel), options_);
  progress_ = std::make_unique<ProgressLine>(environment_.err, progress_enabled_, *reporter_,
                                             std::move(done_fraction));
  return true;
}

int Delivery::Finish() {
  outcome_.stats = reporter_->Finish();
  progress_->Stop();
  outcome_.elapsed_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // The delivery's own failure comes first; an input's (a read error) is kept after it.
  const std::string delivery_error = reporter_->fatal_error();
  if (!delivery_error.empty()) {
    outcome_.fatal_error = outcome_.fatal_error.empty()
                               ? delivery_error
                               : delivery_error + "; " + outcome_.fatal_error;
  }
  const DeliveryStats& stats = outcome_.stats;
  if (stats.interrupted || Interrupted(environment_)) {
    // Where the input is to be resumed: the smallest line read and not acknowledged, or the
    // first line not read.
    uint64_t first = stats.first_unacknowledged_line;
    if (outcome_.first_unread_line > 0 && (first == 0 || outcome_.first_unread_line < first)) {
      first = outcome_.first_unread_line;
    }
    outcome_.incomplete = stats.unacknowledged > 0 || stats.first_unacknowledged_line > 0 ||
                          outcome_.first_unread_line > 0;
    outcome_.extra["interrupted"] = true;
    outcome_.extra["acknowledged"] = stats.acknowledged();
    std::string message =
        "interrupted: " + client::WithThousands(stats.acknowledged()) + " events acknowledged";
    if (stats.unacknowledged > 0) {
      message += ", " + client::WithThousands(stats.unacknowledged) +
                 " read but not acknowledged within --drain-ms";
    }
    if (outcome_.resumable && first > 0) {
      outcome_.extra["first_unacknowledged_line"] = first;
      outcome_.extra["resume_flag"] = "--from-line " + std::to_string(first);
      message += "; first line not acknowledged: " + std::to_string(first) +
                 "; resume with --from-line " + std::to_string(first);
    } else if (!outcome_.incomplete) {
      message += "; every event read was acknowledged";
    }
    std::fprintf(environment_.err, "%sevent_reporter: %s\n",
                 environment_.err_is_terminal ? "\r\033[K" : "", message.c_str());
  }
  return PrintSummary(outcome_, as_json_, environment_);
}

}  // namespace rta::reporter::detail
