#include "event_reporter/replay_mode.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "event_reporter/cli_common.h"
#include "proto/event_json.h"

namespace rta::reporter {
namespace {

using Clock = std::chrono::steady_clock;
using client::Flags;
using detail::Concat;
using detail::UsageError;
using events::ParseEventJson;

constexpr char kReplayUsage[] = R"(event_reporter replay FILE|- [flags]

Sends JSON Lines events, one per line, with EventData's field names:
  {"event_type":"page_view","page":"/pricing","visitor_id":"v1","session_id":"s1",
   "timestamp_ms":1764000000000,"country":"DE","device":"mobile","referrer":"google.com"}
Events without an event_id get one. A bad line is reported with its number and skipped; the
others still go in, and the exit status is 1.

  --strict              stop reading at the first bad line (the lines before it are sent)
  --shift-to-now        move every timestamp by the same amount so that the first is now
                        (replays old captures into the live windows, which cover the last hour;
                        without it older events go to the server's history only)
  --rate N              send at most N events per second, default: as fast as possible
  --from-line N         skip the lines before line N (lines keep their numbers in messages):
                        resumes an interrupted replay of a file where it says

Examples:
  event_reporter replay events.jsonl
  tail -f app-events.jsonl | event_reporter replay - --server analytics:50051 --linger-ms 200
  event_reporter replay capture.jsonl --shift-to-now --rate 500 --json
  event_reporter replay events.jsonl --from-line 120001

Ctrl-C or SIGTERM: stops reading, waits at most --drain-ms for the acknowledgements of what was
read, and (exit status 3) prints the first line not acknowledged and the --from-line flag that
resumes from it; every line before it was acknowledged. Events keep their event_id on a resume,
so lines after it that were acknowledged too are counted once (lines without an event_id get a
new one and would be counted again).
)";

// Sleeps so that `count` events take at least count / rate seconds since `start`.
void Pace(double rate, uint64_t count, Clock::time_point start) {
  if (rate <= 0) return;
  const auto due = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(count / rate));
  if (due > Clock::now()) std::this_thread::sleep_until(due);
}

}  // namespace

int RunReplay(const std::vector<std::string>& args, const CliEnvironment& environment) {
  Flags flags(args, Concat(detail::kDeliveryValueFlags, {"rate", "from-line"}),
              Concat(detail::kDeliverySwitches, {"strict", "shift-to-now"}));
  if (flags.Has("help")) {
    std::fprintf(environment.out, "%s%s", kReplayUsage, detail::kDeliveryFlagsHelp.c_str());
    return 0;
  }
  const double rate = flags.Number("rate", 0, 0, 1e9);
  const uint64_t from_line = static_cast<uint64_t>(flags.Integer("from-line", 1, 1, INT64_MAX));
  detail::Delivery delivery("replay", flags, environment);
  if (!flags.error().empty()) return UsageError(environment, flags.error(), "replay");
  if (flags.positional().size() != 1) {
    return UsageError(environment, "replay takes one FILE (or - for stdin)", "replay");
  }
  const std::string path = flags.positional().front();
  std::ifstream file;
  double file_bytes = 0;
  if (path != "-") {
    // A directory opens as a stream on Linux and then fails its first read; without this
    // check a replay of one would end at once as an empty input, with exit 0.
    std::error_code ignored;
    if (std::filesystem::is_directory(path, ignored)) {
      return UsageError(environment, "cannot read " + path + ": is a directory", "replay");
    }
    file.open(path, std::ios::binary);
    if (!file) return UsageError(environment, "cannot open " + path, "replay");
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
      file_bytes = static_cast<double>(info.st_size);
    }
  }
  std::istream& in = path == "-" ? *environment.in : file;
  delivery.outcome().resumable = path != "-";
  std::atomic<uint64_t> bytes_read{0};
  const bool started = delivery.Start([&]() -> std::optional<double> {
    if (file_bytes <= 0) return std::nullopt;
    return static_cast<double>(bytes_read.load(std::memory_order_relaxed)) / file_bytes;
  });
  if (!started) return 2;

  const bool strict = flags.Has("strict");
  const bool shift = flags.Has("shift-to-now");
  std::optional<int64_t> shift_ms;
  const auto start = Clock::now();
  uint64_t submitted = 0;
  std::string line;
  analytics::EventData event;
  uint64_t number = 1;
  for (; std::getline(in, line); ++number) {
    if (detail::Interrupted(environment)) {
      delivery.outcome().first_unread_line = number;  // read, but not taken
      break;
    }
    bytes_read.fetch_add(line.size() + 1, std::memory_order_relaxed);
    if (number < from_line) continue;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (std::string error = ParseEventJson(line, &event); !error.empty()) {
      std::fprintf(environment.err, "%sevent_reporter: line %llu: %s\n",
                   environment.err_is_terminal ? "\r\033[K" : "",
                   static_cast<unsigned long long>(number), error.c_str());
      ++delivery.outcome().invalid_lines;
      if (strict) {
        std::fprintf(environment.err, "event_reporter: --strict: stopped at line %llu\n",
                     static_cast<unsigned long long>(number));
        break;
      }
      continue;
    }
    if (shift && event.timestamp_ms() != 0) {
      if (!shift_ms) shift_ms = detail::NowMs() - event.timestamp_ms();
      event.set_timestamp_ms(event.timestamp_ms() + *shift_ms);
    }
    Pace(rate, submitted, start);
    if (!delivery.reporter().Submit(std::move(event), number)) {
      if (detail::Interrupted(environment)) {
        delivery.outcome().first_unread_line = number;  // not taken: the drain began
        break;
      }
      // The delivery stopped (a refusal retrying cannot fix): say what of the input was never
      // sent. A file is counted to its end; a pipe may never end, so only the line is named.
      delivery.outcome().extra["stopped_at_line"] = number;
      if (path != "-") {
        uint64_t not_sent = 0;
        while (std::getline(in, line)) {
          if (line.find_first_not_of(" \t\r") != std::string::npos) ++not_sent;
        }
        delivery.outcome().extra["not_sent"] = not_sent;
      }
      break;
    }
    ++submitted;
  }
  if (in.bad()) {
    // A read failed (an I/O error): the lines after it were never seen, so the replay is not
    // complete, whatever was delivered before it.
    delivery.outcome().fatal_error = "cannot read " + std::string(path == "-" ? "stdin" : path) +
                                     " after line " + std::to_string(number - 1) +
                                     ": a read error; the rest of the input was not sent";
  }
  delivery.outcome().extra["input"] = path == "-" ? "stdin" : path;
  if (from_line > 1) delivery.outcome().extra["from_line"] = from_line;
  return delivery.Finish();
}

}  // namespace rta::reporter
