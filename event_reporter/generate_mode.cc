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

#include "event_reporter/cli_common.h"
#include "event_reporter/event_json.h"
#include "event_reporter/number_text.h"
#include "event_reporter/traffic_generator.h"

namespace rta::reporter {
namespace {

using Clock = std::chrono::steady_clock;
using client::Flags;
using client::WithThousands;
using detail::Concat;
using detail::NowMs;
using detail::UsageError;
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
                        --events or --duration; timestamps start at --start-ms, default now)
  --start-ms MS         time of the first event, Unix milliseconds (with --output)
Without --duration or --events it runs until Ctrl-C.

Examples:
  event_reporter generate --rate 200
  event_reporter generate --rate 1000 --duration 60 --server 10.0.0.1:50051 --server 10.0.0.2:50051
  event_reporter generate --events 100000 --seed 7 --output traffic.jsonl
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

}  // namespace

int RunGenerate(const std::vector<std::string>& args, const CliEnvironment& environment) {
  Flags flags(args,
              Concat(detail::kDeliveryValueFlags, {"rate", "duration", "events", "seed", "funnel",
                                                   "products", "output", "start-ms"}),
              detail::kDeliverySwitches);
  if (flags.Has("help")) {
    std::fprintf(environment.out, "%s%s", kGenerateUsage, detail::kDeliveryFlagsHelp);
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
  detail::Delivery delivery("generate", flags, environment);
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
    ExactAnswers answers;
    const auto start = Clock::now();
    for (uint64_t count = 0;; ++count) {
      generator.Next(&event);
      if (done(count, event.timestamp_ms()) || detail::Interrupted(environment)) break;
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
    if (done(count, event.timestamp_ms()) || detail::Interrupted(environment)) break;
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

}  // namespace rta::reporter
