#include "event_reporter/generate_mode.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "clients/common/number_text.h"
#include "event_reporter/cli_common.h"
#include "event_reporter/traffic_generator.h"
#include "proto/event_json.h"

namespace rta::reporter {
namespace {

using Clock = std::chrono::steady_clock;
using client::Flags;
using client::WithThousands;
using detail::Concat;
using detail::NowMs;
using detail::UsageError;
using events::EventToJson;
using nlohmann::json;

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
                        --events or --duration); the events end at the moment of generation,
                        so that replaying the file right away is accepted
  --start-ms MS         with --output: place the first event at MS (Unix milliseconds)
                        instead
Without --duration or --events it runs until Ctrl-C. Live traffic is sent in real time, each
event at its own time stamp. A file's events span about --events / --rate seconds; the
server's live windows cover the last hour (older events go to its history only, or are refused
without a --data-dir), so without --start-ms a span over 55 minutes is refused (raise --rate or
lower --events): the 5 minutes left are for starting the replay. With --start-ms a file can
span days, for a backfill of the history.

Examples:
  event_reporter generate --rate 200
  event_reporter generate --rate 1000 --duration 60 --server 10.0.0.1:50051 --server 10.0.0.2:50051
  event_reporter generate --events 100000 --seed 7 --output traffic.jsonl
  event_reporter replay traffic.jsonl
)";

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

// The server's defaults (analytics_server --max-event-age-seconds, and its fixed allowance for
// clocks running ahead): what a replay right after generation must fit in.
constexpr int64_t kServerMaxAgeMs = 3'600'000;
constexpr int64_t kServerMaxFutureMs = 60'000;
// The longest span --output places by itself: the server's maximum age less five minutes for
// starting and running the replay.
constexpr int64_t kMaxPlacedSpanMs = kServerMaxAgeMs - 5 * 60'000;
// --start-ms must be Unix milliseconds of this century: catches seconds given by mistake.
constexpr int64_t kMinStartMs = 946'684'800'000;    // 2000-01-01T00:00:00Z
constexpr int64_t kMaxStartMs = 4'102'444'800'000;  // 2100-01-01T00:00:00Z

// "2026-12-02T13:02:01.250Z"
std::string IsoTime(int64_t ms) { return client::UtcText(ms, /*millis=*/true); }

// 50 -> "50", 0.5 -> "0.5": a flag's value as the user would type it.
std::string NumberText(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

// When a bounded run ends: after max_events events, or at the first event time at or past
// start_ms + duration_ms (0: no such bound).
struct Bounds {
  int64_t max_events = 0;
  int64_t duration_ms = 0;
  bool Done(uint64_t count, int64_t time_ms, int64_t start_ms) const {
    return (max_events > 0 && count >= static_cast<uint64_t>(max_events)) ||
           (duration_ms > 0 && time_ms >= start_ms + duration_ms);
  }
};

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

// Writes generated traffic to `output` (a path, or - for environment.out). Unless `placed`
// (--start-ms), the events are moved so that the last one is at the moment of generation: a
// first pass runs the generator to find where the traffic ends, and a second one, identical
// because the generator is deterministic, writes every event shifted by the same amount. Two
// passes instead of a buffer keep memory flat for any --events; the first pass costs about a
// second per million events (1,000,000: 7.3 s in all, 6.1 s when placed by --start-ms, release
// build on a loaded 2-core machine).
int WriteTraffic(const GeneratorOptions& options, const Bounds& bounds, const std::string& output,
                 bool placed, bool as_json, const CliEnvironment& environment) {
  const auto start = Clock::now();
  const int64_t now_ms = options.start_ms;  // without --start-ms, generation starts at now
  analytics::EventData event;
  int64_t shift_ms = 0;
  if (!placed) {
    if (bounds.duration_ms > kMaxPlacedSpanMs) {
      return UsageError(environment,
                        "--duration " + std::to_string(bounds.duration_ms / 1000) +
                            " s is longer than a file can be and still be replayed: the server "
                            "refuses events older than 1 hour. Keep --duration at most " +
                            std::to_string(kMaxPlacedSpanMs / 1000) +
                            ", or place the events yourself with --start-ms",
                        "generate");
    }
    TrafficGenerator probe(options);
    int64_t first_ms = 0, last_ms = 0;
    for (uint64_t count = 0;; ++count) {
      probe.Next(&event);
      if (bounds.Done(count, event.timestamp_ms(), options.start_ms)) break;
      if (detail::Interrupted(environment)) {
        std::fprintf(environment.err, "event_reporter: interrupted; nothing written to %s\n",
                     output.c_str());
        return 1;
      }
      if (count == 0) first_ms = event.timestamp_ms();
      last_ms = event.timestamp_ms();
      if (last_ms - first_ms > kMaxPlacedSpanMs) {
        // Only --events can get here (a --duration this long was refused above).
        const double events = static_cast<double>(bounds.max_events);
        return UsageError(
            environment,
            "--events " + WithThousands(bounds.max_events) + " at --rate " +
                NumberText(options.events_per_second) + " span about " +
                ClockText(events / options.events_per_second) +
                " of event time, longer than a file can be and still be replayed: the server "
                "refuses events older than 1 hour. Keep the span under " +
                std::to_string(kMaxPlacedSpanMs / 60'000) + " minutes (--rate " +
                std::to_string(
                    static_cast<int64_t>(std::ceil(events / (kMaxPlacedSpanMs / 1000.0)))) +
                " or more for these events, or fewer --events), or place the events yourself "
                "with --start-ms",
            "generate");
      }
    }
    shift_ms = now_ms - last_ms;
  }

  std::ofstream file;
  if (output != "-") {
    file.open(output, std::ios::binary | std::ios::trunc);
    if (!file) return UsageError(environment, "cannot write " + output, "generate");
  }
  ExactAnswers answers;
  int64_t first_ms = 0, last_ms = 0;
  TrafficGenerator generator(options);
  for (uint64_t count = 0;; ++count) {
    generator.Next(&event);
    if (bounds.Done(count, event.timestamp_ms(), options.start_ms) ||
        detail::Interrupted(environment)) {
      break;
    }
    event.set_timestamp_ms(event.timestamp_ms() + shift_ms);
    if (count == 0) first_ms = event.timestamp_ms();
    last_ms = event.timestamp_ms();
    answers.Add(event);
    const std::string text = EventToJson(event) + "\n";
    // A write that fails (a full disk, a closed pipe) ends the run: the rest could not land.
    if (output == "-") {
      if (std::fwrite(text.data(), 1, text.size(), environment.out) != text.size()) break;
    } else if (!file.write(text.data(), static_cast<std::streamsize>(text.size()))) {
      break;
    }
  }
  const bool written = output == "-"
                           ? std::fflush(environment.out) == 0 && !std::ferror(environment.out)
                           : static_cast<bool>(file.flush());
  if (!written) {
    std::fprintf(environment.err, "event_reporter: writing %s failed\n",
                 output == "-" ? "stdout" : output.c_str());
    return 1;
  }
  // The summary goes to stderr when the events themselves go to stdout.
  FILE* summary_out = output == "-" ? environment.err : environment.out;
  const std::string placement = placed ? "placed by --start-ms" : "ending at generation";
  if (as_json) {
    json summary = {
        {"mode", "generate"},
        {"output", output},
        {"seed", options.seed},
        {"first_event_ms", first_ms},
        {"last_event_ms", last_ms},
        {"elapsed_seconds", std::chrono::duration<double>(Clock::now() - start).count()}};
    summary["exact"] = answers.ToJson();
    std::fprintf(summary_out, "%s\n", summary.dump().c_str());
  } else {
    std::fprintf(summary_out,
                 "generate: wrote %s events to %s (seed %llu): %s page views, %s conversions, "
                 "revenue %.2f, %s visitors\n"
                 "  event times: %s to %s (%s, %s)\n",
                 WithThousands(answers.events).c_str(), output.c_str(),
                 static_cast<unsigned long long>(options.seed),
                 WithThousands(answers.page_views).c_str(),
                 WithThousands(answers.conversions).c_str(), answers.revenue,
                 WithThousands(answers.visitors.size()).c_str(), IsoTime(first_ms).c_str(),
                 IsoTime(last_ms).c_str(), ClockText((last_ms - first_ms) / 1000.0).c_str(),
                 placement.c_str());
  }
  if (placed && answers.events > 0) {
    // Placed by hand: say so when a replay now would not reach the live windows in full.
    const int64_t now = NowMs();
    if (first_ms < now - kServerMaxAgeMs || last_ms > now + kServerMaxFutureMs) {
      std::fprintf(environment.err,
                   "event_reporter: note: the events run from %s to %s; the server's live "
                   "windows take events at most 1 hour old and at most 60 s ahead of its clock: "
                   "older ones go to its history only (with a --data-dir; a memory-only server "
                   "rejects them), later ones are rejected\n",
                   IsoTime(first_ms).c_str(), IsoTime(last_ms).c_str());
    }
  }
  return 0;
}

// Sends the traffic live: each event at its own time, so the traffic has the generator's
// shape in real time.
int SendLive(const GeneratorOptions& options, const Bounds& bounds, detail::Delivery& delivery,
             const CliEnvironment& environment) {
  const bool started = delivery.Start([&]() -> std::optional<double> {
    if (bounds.max_events > 0) {
      return static_cast<double>(delivery.reporter().stats().sent) /
             static_cast<double>(bounds.max_events);
    }
    if (bounds.duration_ms > 0) {
      return static_cast<double>(NowMs() - options.start_ms) / bounds.duration_ms;
    }
    return std::nullopt;
  });
  if (!started) return 2;
  TrafficGenerator generator(options);
  analytics::EventData event;
  const int64_t wall_start_ms = NowMs();
  bool warned_behind = false;
  for (uint64_t count = 0;; ++count) {
    generator.Next(&event);
    if (bounds.Done(count, event.timestamp_ms(), options.start_ms) ||
        detail::Interrupted(environment)) {
      break;
    }
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

}  // namespace

int RunGenerate(const std::vector<std::string>& args, const CliEnvironment& environment) {
  Flags flags(args,
              Concat(detail::kDeliveryValueFlags, {"rate", "duration", "events", "seed", "funnel",
                                                   "products", "output", "start-ms"}),
              detail::kDeliverySwitches);
  if (flags.Has("help")) {
    std::fprintf(environment.out, "%s%s", kGenerateUsage, detail::kDeliveryFlagsHelp.c_str());
    return 0;
  }
  GeneratorOptions options;
  options.events_per_second = flags.Number("rate", 50, 0.001, 1e8);
  Bounds bounds;
  bounds.duration_ms = static_cast<int64_t>(flags.Number("duration", 0, 0, 1e9) * 1000);
  bounds.max_events = flags.Integer("events", 0, 0, INT64_MAX);
  std::random_device random;
  options.seed = flags.Has("seed") ? static_cast<uint64_t>(flags.Integer("seed", 1, 0, INT64_MAX))
                                   : (static_cast<uint64_t>(random()) << 31) ^ random();
  options.products = static_cast<uint32_t>(flags.Integer("products", 200, 1, 1'000'000));
  ReadFunnel(flags, &options.funnel);
  const bool placed = flags.Has("start-ms");
  options.start_ms = NowMs();
  if (placed) {
    options.start_ms = flags.Integer("start-ms", 0, INT64_MIN, INT64_MAX);
    if (flags.error().empty() &&
        (options.start_ms < kMinStartMs || options.start_ms >= kMaxStartMs)) {
      flags.Fail("--start-ms: expected Unix milliseconds from " + std::to_string(kMinStartMs) +
                 " (2000-01-01) to " + std::to_string(kMaxStartMs) + " (2100-01-01), got " +
                 flags.String("start-ms") +
                 (options.start_ms >= kMinStartMs / 1000 && options.start_ms < kMaxStartMs / 1000
                      ? " (seconds? multiply by 1000)"
                      : ""));
    }
  }
  const std::string output = flags.String("output");
  detail::Delivery delivery("generate", flags, environment);
  if (!flags.error().empty()) return UsageError(environment, flags.error(), "generate");
  if (!flags.positional().empty()) {
    return UsageError(environment, "unexpected argument " + flags.positional().front(), "generate");
  }
  if (output.empty()) {
    if (placed) {
      return UsageError(environment,
                        "--start-ms places the events of --output; live traffic is sent as it "
                        "happens, stamped with the current time",
                        "generate");
    }
    return SendLive(options, bounds, delivery, environment);
  }
  if (bounds.max_events == 0 && bounds.duration_ms == 0) {
    return UsageError(environment, "--output needs --events or --duration", "generate");
  }
  return WriteTraffic(options, bounds, output, placed, flags.Has("json"), environment);
}

}  // namespace rta::reporter
