#include "event_reporter/cli.h"

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "event_reporter/client_channel.h"
#include "event_reporter/event_json.h"
#include "event_reporter/flags.h"
#include "event_reporter/number_text.h"
#include "event_reporter/reporter.h"
#include "event_reporter/traffic_generator.h"

namespace rta::reporter {
namespace {

using Clock = std::chrono::steady_clock;
using client::Flags;
using client::WithThousands;
using nlohmann::json;

constexpr char kUsage[] = R"(event_reporter: stream events into the analytics server.

Usage:
  event_reporter replay FILE|- [flags]   send JSON Lines events from a file or stdin
  event_reporter generate [flags]        send (or --output) realistic synthetic website traffic
  event_reporter send --type T [flags]   send one event built from flags
  event_reporter MODE --help             flags of a mode, with examples

Exit status: 0 every event delivered; 1 a line or event was refused, or events could not be
delivered; 2 bad usage.
)";

constexpr char kDeliveryFlags[] = R"(
Delivery (every mode that sends):
  --server HOST:PORT    server address, default 127.0.0.1:50051; repeat it (or give a comma
                        list) to balance streams over several servers (round_robin)
  --token TOKEN         bearer token sent as "authorization: Bearer TOKEN"
  --tls-ca FILE         connect with TLS, trusting the PEM roots in FILE
  --no-batch            one event per message (ReportEvent) instead of batches
  --batch-size N        events per batch message, default 500
  --batch-bytes N       bytes per batch message, default 524288
  --linger-ms N         how long a batch waits to fill up, default 20
  --streams N           concurrent streams, default 2
  --stream-events N     events per stream before it is closed and acknowledged, default 50000
  --deadline-ms N       deadline of one stream, default 30000
  --give-up-after S     stop retrying after S seconds of failures, default 300
  --quiet               no progress line
  --json                print the final summary as JSON
A failed stream's events are re-sent with exponential backoff; every event carries an id, so
the server counts each exactly once. Ctrl-C stops reading and delivers what is queued; a second
Ctrl-C quits at once.
)";

constexpr char kReplayUsage[] = R"(event_reporter replay FILE|- [flags]

Sends JSON Lines events, one per line, with EventData's field names:
  {"event_type":"page_view","page":"/pricing","visitor_id":"v1","session_id":"s1",
   "timestamp_ms":1764000000000,"country":"DE","device":"mobile","referrer":"google.com"}
Events without an event_id get one. A bad line is reported with its number and skipped; the
others still go in, and the exit status is 1.

  --strict              stop reading at the first bad line (the lines before it are sent)
  --shift-to-now        move every timestamp by the same amount so that the first is now
                        (replays old captures; the server refuses events older than 1 hour)
  --rate N              send at most N events per second, default: as fast as possible

Examples:
  event_reporter replay events.jsonl
  tail -f app-events.jsonl | event_reporter replay - --server analytics:50051 --linger-ms 200
  event_reporter replay capture.jsonl --shift-to-now --rate 500 --json
)";

constexpr char kGenerateUsage[] = R"(event_reporter generate [flags]

Synthetic traffic of a web shop: visitors arrive (Poisson) and browse through a funnel
landing -> product -> cart -> checkout -> purchase; page loads are log-normal (mobile slower),
product popularity is Zipf-like, countries, devices, referrers and campaigns have realistic
shares, purchases carry revenue. The same --seed gives the same events.

  --rate N              events per second on average, default 50
  --duration S          stop after S seconds of traffic
  --events N            stop after N events
  --seed N              random seed, default: a random one (printed in the summary)
  --funnel A,B,C,D      landing->product, product->cart, cart->checkout, checkout->purchase
                        probabilities, default 0.55,0.2,0.55,0.55
  --products N          catalog size, default 200
  --output FILE|-       write the events as JSON Lines instead of sending them (needs
                        --events or --duration; timestamps start at --start-ms, default now)
  --start-ms MS         time of the first event, Unix milliseconds (with --output)
Without --duration or --events it runs until Ctrl-C.

Examples:
  event_reporter generate --rate 200
  event_reporter generate --rate 1000 --duration 60 --server 10.0.0.1:50051 --server 10.0.0.2:50051
  event_reporter generate --events 100000 --seed 7 --output traffic.jsonl
)";

constexpr char kSendUsage[] = R"(event_reporter send --type TYPE [flags]

Sends one event, for quick checks from a shell.
  --type TYPE           page_view, click, add_to_cart, purchase, signup, page_load, ... (required)
  --id ID               event id, default: generated
  --page PATH  --visitor ID  --session ID  --referrer HOST  --utm-source S  --utm-campaign C
  --country CC  --device D  --value X  --timestamp-ms MS (default: now)
  --property KEY=VALUE  (repeatable)

Examples:
  event_reporter send --type page_view --page /pricing --visitor v1 --session s1
  event_reporter send --type purchase --value 59.90 --visitor v1 --session s1 --json
)";

const std::vector<std::string> kDeliveryValueFlags = {
    "server",    "token",   "tls-ca",        "batch-size",  "batch-bytes",
    "linger-ms", "streams", "stream-events", "deadline-ms", "give-up-after"};
const std::vector<std::string> kDeliverySwitches = {"no-batch", "quiet", "json", "help"};

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string ClockText(double seconds) {
  const auto total = static_cast<int64_t>(seconds);
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return text;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Interrupted(const CliEnvironment& environment) {
  return environment.interrupted != nullptr && environment.interrupted->load();
}

// Reads the delivery flags; records errors in `flags`.
DeliveryOptions ReadDeliveryOptions(Flags& flags, const CliEnvironment& environment) {
  DeliveryOptions options;
  std::vector<std::string> servers;
  for (const std::string& value : flags.All("server")) {
    std::stringstream list(value);
    for (std::string server; std::getline(list, server, ',');) {
      if (!server.empty()) servers.push_back(server);
    }
  }
  if (!servers.empty()) options.channel.servers = servers;
  options.channel.token = flags.String("token");
  options.channel.tls_ca_file = flags.String("tls-ca");
  options.batched = !flags.Has("no-batch");
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
  options.log = [err](const std::string& message) {
    std::fprintf(err, "\r\033[Kevent_reporter: %s\n", message.c_str());
  };
  if (!environment.err_is_terminal) {
    options.log = [err](const std::string& message) {
      std::fprintf(err, "event_reporter: %s\n", message.c_str());
    };
  }
  return options;
}

// A live progress line on stderr, redrawn four times a second while a delivery runs.
class ProgressLine {
 public:
  // total_fraction: how far the input is, from 0 to 1, for the ETA (nullopt: unknown).
  ProgressLine(const CliEnvironment& environment, bool enabled, const Reporter& reporter,
               std::function<std::optional<double>()> done_fraction)
      : err_(environment.err), reporter_(reporter), done_fraction_(std::move(done_fraction)) {
    if (enabled) thread_ = std::thread([this] { Run(); });
  }
  ~ProgressLine() { Stop(); }

  void Stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
      std::fprintf(err_, "\r\033[K");
    }
  }

 private:
  void Run() {
    const auto start = Clock::now();
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_; })) {
      const DeliveryStats stats = reporter_.stats();
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      std::string line =
          "sent " + WithThousands(stats.sent) + "  acked " + WithThousands(stats.acknowledged()) +
          "  rejected " + WithThousands(stats.rejected) + "  retries " +
          WithThousands(stats.retries) + "  " +
          WithThousands(static_cast<uint64_t>(stats.sent / std::max(elapsed, 1e-3))) + " ev/s  " +
          ClockText(elapsed);
      if (const std::optional<double> fraction = done_fraction_();
          fraction && *fraction > 0.01 && *fraction <= 1) {
        line += "  ETA " + ClockText(elapsed / *fraction - elapsed);
      }
      std::fprintf(err_, "\r\033[K%s", line.c_str());
      std::fflush(err_);
    }
  }

  FILE* err_;
  const Reporter& reporter_;
  std::function<std::optional<double>()> done_fraction_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

struct RunOutcome {
  std::string mode;
  DeliveryStats stats;
  uint64_t invalid_lines = 0;
  double elapsed_seconds = 0;
  std::string fatal_error;
  json extra = json::object();  // mode-specific fields (seed, output, ...)
};

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
                    {"invalid_lines", outcome.invalid_lines},
                    {"elapsed_seconds", std::round(outcome.elapsed_seconds * 1000) / 1000},
                    {"events_per_second", std::round(rate)}};
    if (!outcome.fatal_error.empty()) summary["error"] = outcome.fatal_error;
    summary.update(outcome.extra);
    std::fprintf(environment.out, "%s\n", summary.dump().c_str());
  } else {
    std::fprintf(environment.out,
                 "%s: %s sent, %s accepted, %s duplicates, %s rejected, %s failed, %s retries, "
                 "%s invalid lines in %.1f s (%s events/s)\n",
                 outcome.mode.c_str(), WithThousands(stats.sent).c_str(),
                 WithThousands(stats.accepted).c_str(), WithThousands(stats.duplicates).c_str(),
                 WithThousands(stats.rejected).c_str(), WithThousands(stats.failed).c_str(),
                 WithThousands(stats.retries).c_str(), WithThousands(outcome.invalid_lines).c_str(),
                 outcome.elapsed_seconds, WithThousands(static_cast<uint64_t>(rate)).c_str());
    for (const auto& [key, value] : outcome.extra.items()) {
      std::fprintf(environment.out, "  %s: %s\n", key.c_str(),
                   value.is_string() ? value.get<std::string>().c_str() : value.dump().c_str());
    }
  }
  if (!outcome.fatal_error.empty()) {
    std::fprintf(environment.err, "event_reporter: %s\n", outcome.fatal_error.c_str());
  }
  std::fflush(environment.out);
  const bool clean = stats.rejected == 0 && stats.failed == 0 && outcome.invalid_lines == 0 &&
                     outcome.fatal_error.empty();
  return clean ? 0 : 1;
}

// What every sending mode shares: the channel, the reporter, the progress line, the summary.
class Delivery {
 public:
  Delivery(std::string mode, Flags& flags, const CliEnvironment& environment)
      : environment_(environment), options_(ReadDeliveryOptions(flags, environment)) {
    outcome_.mode = std::move(mode);
    as_json_ = flags.Has("json");
    progress_enabled_ = environment.err_is_terminal && !flags.Has("quiet");
  }

  // Connects lazily; false with the reason on stderr when the address or CA file is bad.
  bool Start(std::function<std::optional<double>()> done_fraction) {
    std::string error;
    std::shared_ptr<grpc::Channel> channel = client::MakeChannel(options_.channel, &error);
    if (!channel) {
      std::fprintf(environment_.err, "event_reporter: %s\n", error.c_str());
      return false;
    }
    start_ = Clock::now();
    reporter_ = std::make_unique<Reporter>(std::move(channel), options_);
    progress_ = std::make_unique<ProgressLine>(environment_, progress_enabled_, *reporter_,
                                               std::move(done_fraction));
    return true;
  }

  Reporter& reporter() { return *reporter_; }
  RunOutcome& outcome() { return outcome_; }

  int Finish() {
    outcome_.stats = reporter_->Finish();
    progress_->Stop();
    outcome_.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    outcome_.fatal_error = reporter_->fatal_error();
    return PrintSummary(outcome_, as_json_, environment_);
  }

 private:
  const CliEnvironment& environment_;
  DeliveryOptions options_;
  RunOutcome outcome_;
  bool as_json_ = false;
  bool progress_enabled_ = false;
  Clock::time_point start_;
  std::unique_ptr<Reporter> reporter_;
  std::unique_ptr<ProgressLine> progress_;
};

int UsageError(const CliEnvironment& environment, const std::string& message,
               const char* mode_usage) {
  std::fprintf(environment.err, "event_reporter: %s\n(see: event_reporter %s --help)\n",
               message.c_str(), mode_usage);
  return 2;
}

// Sleeps so that `count` events take at least count / rate seconds since `start`.
void Pace(double rate, uint64_t count, Clock::time_point start) {
  if (rate <= 0) return;
  const auto due = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(count / rate));
  if (due > Clock::now()) std::this_thread::sleep_until(due);
}

int RunReplay(const std::vector<std::string>& args, const CliEnvironment& environment) {
  Flags flags(args, Concat(kDeliveryValueFlags, {"rate"}),
              Concat(kDeliverySwitches, {"strict", "shift-to-now"}));
  if (flags.Has("help")) {
    std::fprintf(environment.out, "%s%s", kReplayUsage, kDeliveryFlags);
    return 0;
  }
  const double rate = flags.Number("rate", 0, 0, 1e9);
  Delivery delivery("replay", flags, environment);
  if (!flags.error().empty()) return UsageError(environment, flags.error(), "replay");
  if (flags.positional().size() != 1) {
    return UsageError(environment, "replay takes one FILE (or - for stdin)", "replay");
  }
  const std::string path = flags.positional().front();
  std::ifstream file;
  double file_bytes = 0;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return UsageError(environment, "cannot open " + path, "replay");
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
      file_bytes = static_cast<double>(info.st_size);
    }
  }
  std::istream& in = path == "-" ? *environment.in : file;
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
  for (uint64_t number = 1; std::getline(in, line) && !Interrupted(environment); ++number) {
    bytes_read.fetch_add(line.size() + 1, std::memory_order_relaxed);
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
      if (!shift_ms) shift_ms = NowMs() - event.timestamp_ms();
      event.set_timestamp_ms(event.timestamp_ms() + *shift_ms);
    }
    Pace(rate, submitted, start);
    if (!delivery.reporter().Submit(std::move(event), number)) break;
    ++submitted;
  }
  delivery.outcome().extra["input"] = path == "-" ? "stdin" : path;
  return delivery.Finish();
}

bool ReadFunnel(Flags& flags, FunnelRates* funnel) {
  if (!flags.Has("funnel")) return true;
  std::stringstream list(flags.String("funnel"));
  std::vector<double> rates;
  for (std::string item; std::getline(list, item, ',');) {
    char* end = nullptr;
    const double rate = std::strtod(item.c_str(), &end);
    rates.push_back(item.empty() || *end != '\0' ? -1 : rate);
  }
  if (rates.size() != 4 ||
      std::any_of(rates.begin(), rates.end(), [](double r) { return !(r >= 0 && r <= 1); })) {
    flags.Fail("--funnel: expected four probabilities from 0 to 1, e.g. 0.55,0.2,0.55,0.55");
    return false;
  }
  *funnel = {rates[0], rates[1], rates[2], rates[3]};
  return true;
}

// The exact answers for generated traffic, so a replay can be checked against the server.
struct ExactAnswers {
  uint64_t events = 0;
  uint64_t page_views = 0;
  uint64_t conversions = 0;
  double revenue = 0;
  std::set<std::string> visitors;

  void Add(const analytics::EventData& event) {
    ++events;
    if (event.event_type() == "page_view") ++page_views;
    if (event.event_type() == "purchase" || event.event_type() == "signup") ++conversions;
    if (event.event_type() == "purchase") revenue += event.value();
    if (!event.visitor_id().empty()) visitors.insert(event.visitor_id());
  }
  json ToJson() const {
    return {{"events", events},
            {"page_views", page_views},
            {"conversions", conversions},
            {"revenue", std::round(revenue * 100) / 100},
            {"unique_visitors", visitors.size()}};
  }
};

int RunGenerate(const std::vector<std::string>& args, const CliEnvironment& environment) {
  Flags flags(args,
              Concat(kDeliveryValueFlags, {"rate", "duration", "events", "seed", "funnel",
                                           "products", "output", "start-ms"}),
              kDeliverySwitches);
  if (flags.Has("help")) {
    std::fprintf(environment.out, "%s%s", kGenerateUsage, kDeliveryFlags);
    return 0;
  }
  GeneratorOptions options;
  options.events_per_second = flags.Number("rate", 50, 0.001, 1e8);
  const double duration = flags.Number("duration", 0, 0, 1e9);
  const int64_t max_events = flags.Integer("events", 0, 0, INT64_MAX);
  std::random_device random;
  options.seed = flags.Has("seed") ? static_cast<uint64_t>(flags.Integer("seed", 1, 0, INT64_MAX))
                                   : (static_cast<uint64_t>(random()) << 31) ^ random();
  options.products = static_cast<uint32_t>(flags.Integer("products", 200, 1, 1'000'000));
  ReadFunnel(flags, &options.funnel);
  options.start_ms = flags.Integer("start-ms", NowMs(), 0, INT64_MAX);
  const std::string output = flags.String("output");
  Delivery delivery("generate", flags, environment);
  if (!flags.error().empty()) return UsageError(environment, flags.error(), "generate");
  if (!flags.positional().empty()) {
    return UsageError(environment, "unexpected argument " + flags.positional().front(), "generate");
  }
  // How many events this run makes, when it is bounded.
  const int64_t duration_ms = static_cast<int64_t>(duration * 1000);
  const auto done = [&](uint64_t count, int64_t time_ms) {
    return (max_events > 0 && count >= static_cast<uint64_t>(max_events)) ||
           (duration_ms > 0 && time_ms >= options.start_ms + duration_ms);
  };
  TrafficGenerator generator(options);
  analytics::EventData event;

  if (!output.empty()) {
    if (max_events == 0 && duration_ms == 0) {
      return UsageError(environment, "--output needs --events or --duration", "generate");
    }
    std::ofstream file;
    if (output != "-") {
      file.open(output, std::ios::binary | std::ios::trunc);
      if (!file) return UsageError(environment, "cannot write " + output, "generate");
    }
    std::ostringstream buffer;
    ExactAnswers answers;
    const auto start = Clock::now();
    for (uint64_t count = 0;; ++count) {
      generator.Next(&event);
      if (done(count, event.timestamp_ms()) || Interrupted(environment)) break;
      answers.Add(event);
      const std::string text = EventToJson(event) + "\n";
      if (output == "-") {
        std::fwrite(text.data(), 1, text.size(), environment.out);
      } else {
        file.write(text.data(), static_cast<std::streamsize>(text.size()));
      }
    }
    if (file.is_open() && !file.flush()) {
      std::fprintf(environment.err, "event_reporter: writing %s failed\n", output.c_str());
      return 1;
    }
    // The summary goes to stderr when the events themselves go to stdout.
    CliEnvironment summary_environment = environment;
    if (output == "-") summary_environment.out = environment.err;
    json summary = {
        {"mode", "generate"},
        {"output", output},
        {"seed", options.seed},
        {"elapsed_seconds", std::chrono::duration<double>(Clock::now() - start).count()}};
    summary["exact"] = answers.ToJson();
    if (flags.Has("json")) {
      std::fprintf(summary_environment.out, "%s\n", summary.dump().c_str());
    } else {
      std::fprintf(summary_environment.out,
                   "generate: wrote %s events to %s (seed %llu): %s page views, %s conversions, "
                   "revenue %.2f, %s visitors\n",
                   WithThousands(answers.events).c_str(), output.c_str(),
                   static_cast<unsigned long long>(options.seed),
                   WithThousands(answers.page_views).c_str(),
                   WithThousands(answers.conversions).c_str(), answers.revenue,
                   WithThousands(answers.visitors.size()).c_str());
    }
    return 0;
  }

  const bool started = delivery.Start([&]() -> std::optional<double> {
    if (max_events > 0) {
      return static_cast<double>(delivery.reporter().stats().sent) /
             static_cast<double>(max_events);
    }
    if (duration_ms > 0) return static_cast<double>(NowMs() - options.start_ms) / duration_ms;
    return std::nullopt;
  });
  if (!started) return 2;
  // Live: each event is sent at its own time, so the traffic has the generator's shape.
  const int64_t wall_start_ms = NowMs();
  bool warned_behind = false;
  for (uint64_t count = 0;; ++count) {
    generator.Next(&event);
    if (done(count, event.timestamp_ms()) || Interrupted(environment)) break;
    const int64_t wait_ms = event.timestamp_ms() - NowMs();
    if (wait_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    } else if (wait_ms < -5'000 && !warned_behind && NowMs() - wall_start_ms > 5'000) {
      warned_behind = true;
      std::fprintf(environment.err,
                   "event_reporter: cannot keep up with --rate %g (%.1f s behind); events keep "
                   "their scheduled timestamps\n",
                   options.events_per_second, -wait_ms / 1000.0);
    }
    if (!delivery.reporter().Submit(std::move(event))) break;
  }
  delivery.outcome().extra["seed"] = options.seed;
  return delivery.Finish();
}

int RunSend(const std::vector<std::string>& args, const CliEnvironment& environment) {
  Flags flags(args,
              Concat(kDeliveryValueFlags,
                     {"type", "id", "page", "visitor", "session", "referrer", "utm-source",
                      "utm-campaign", "country", "device", "value", "timestamp-ms", "property"}),
              kDeliverySwitches);
  if (flags.Has("help")) {
    std::fprintf(environment.out, "%s%s", kSendUsage, kDeliveryFlags);
    return 0;
  }
  analytics::EventData event;
  event.set_event_type(flags.String("type"));
  event.set_event_id(flags.String("id"));
  event.set_page(flags.String("page"));
  event.set_visitor_id(flags.String("visitor"));
  event.set_session_id(flags.String("session"));
  event.set_referrer(flags.String("referrer"));
  event.set_utm_source(flags.String("utm-source"));
  event.set_utm_campaign(flags.String("utm-campaign"));
  event.set_country(flags.String("country"));
  event.set_device(flags.String("device"));
  event.set_value(flags.Number("value", 0, -1e300, 1e300));
  event.set_timestamp_ms(flags.Integer("timestamp-ms", NowMs(), 0, INT64_MAX));
  for (const std::string& property : flags.All("property")) {
    const size_t equals = property.find('=');
    if (equals == std::string::npos || equals == 0) {
      flags.Fail("--property: expected KEY=VALUE, got \"" + property + "\"");
      break;
    }
    (*event.mutable_properties())[property.substr(0, equals)] = property.substr(equals + 1);
  }
  if (event.event_type().empty()) flags.Fail("--type is required");
  Delivery delivery("send", flags, environment);
  if (!flags.error().empty()) return UsageError(environment, flags.error(), "send");
  if (!delivery.Start([] { return std::optional<double>(); })) return 2;
  delivery.outcome().extra["event_id"] =
      event.event_id().empty() ? "(generated)" : event.event_id();
  delivery.reporter().Submit(std::move(event));
  return delivery.Finish();
}

}  // namespace

int RunCli(const std::vector<std::string>& args, const CliEnvironment& environment) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? environment.err : environment.out);
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "replay") return RunReplay(rest, environment);
  if (args[0] == "generate") return RunGenerate(rest, environment);
  if (args[0] == "send") return RunSend(rest, environment);
  std::fprintf(environment.err, "event_reporter: unknown mode \"%s\"\n%s", args[0].c_str(), kUsage);
  return 2;
}

}  // namespace rta::reporter
