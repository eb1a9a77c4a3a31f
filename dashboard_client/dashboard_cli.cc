#include "dashboard_client/dashboard_cli.h"

#include <unistd.h>

#include <cstdio>
#include <sstream>

#include "clients/common/flags.h"
#include "dashboard_client/range_mode.h"
#include "dashboard_client/render.h"
#include "dashboard_client/script_modes.h"
#include "dashboard_client/subscription.h"
#include "dashboard_client/terminal_ui.h"

namespace rta::dashboard {
namespace {

constexpr char kUsage[] =
    R"usage(dashboard_client: the live terminal dashboard of the analytics server.

Usage: dashboard_client [flags]

)usage";
constexpr char kUsageBody[] =
    R"usage(  --metrics a,b,c       subscribe to these metrics only (default: what the dashboard shows)
  --window 1m|5m|1h     the window shown first (w switches), default 1m
  --interval MS         ask the server for at most one update per MS milliseconds
  --history-seconds N   per-second history to fill the sparklines with on join, default 3600
  --dashboard-id ID     shown in the status line and the server's logs, default dash-<pid>
  --plain               one line per update ("Updated metric: page_views = 1234 (1m)") for
                        logs and pipes; the default when stdout is not a terminal
  --once                print the current snapshot and exit (0; 1 when the server is
                        unreachable or refuses); with --json as one JSON document
  --timeout-ms N        how long --once waits for the server, default 5000

  --filter D=V          only the segment where dimension D is V (country, device, page,
                        referrer, utm_source, utm_campaign, event_type); several conditions:
                        --filter twice, or "D=V D2=V2". Live: the server counts the segment
                        from the moment it is first watched (no history before); with
                        --range: from the history, where two conditions are kept per day,
                        additive KPIs only

The history (past ranges, from the server's rollups; with --once):
  --range R             1h, 24h, 7d, 30d, today, yesterday or month (UTC days)
  --breakdown D         the totals by the values of dimension D, top first (within one
                        --filter: per day, additive KPIs only)
  --breakdown-by M      the metric that ranks the breakdown, default page_views
  --breakdown-limit N   values listed before the rest is summed as __other__, default 10
  --step 1m|1h|1d       the series' step, default automatic from the range
  --compare             also the previous period of the same length, and the change

Keys: w window 1m/5m/1h, t history (a past range; there f filter, b breakdown), p pause,
r reconnect now, c support chat, ? help, q quit.
The support chat (c) reaches the server's admins (it needs the analyst role once tokens are
required); in it, Enter sends, "@user text" answers a user (admins), Ctrl-R reconnects and Esc
closes the pane.
The dashboard reconnects by itself when the server goes away and resumes where it left off.

Examples:
  dashboard_client
  dashboard_client --server analytics.internal:50051 --window 5m --interval 2000
  dashboard_client --once --json --metrics page_views,revenue | jq .metrics.revenue
  dashboard_client --plain --metrics events_per_second >> traffic.log
  dashboard_client --once --range 7d --compare --breakdown country
  dashboard_client --filter utm_campaign=spring --filter country=DE
  dashboard_client --once --json --range 30d --filter utm_campaign=spring --metrics conversions
  dashboard_client --once --range 30d --filter utm_campaign=spring --breakdown country \
      --breakdown-by conversions --metrics conversions,revenue
)usage";

// The metrics the terminal dashboard draws.
const char* const kDashboardMetrics[] = {
    "events_per_second", "page_views",    "unique_visitors", "active_sessions",
    "conversion_rate",   "revenue",       "bounce_rate",     "page_load_ms_p95",
    "top_pages",         "top_referrers", "top_campaigns",   "events_by_country",
    "events_by_device"};

bool ParseWindow(const std::string& text, analytics::Window* window) {
  if (text == "1m")
    *window = analytics::WINDOW_1M;
  else if (text == "5m")
    *window = analytics::WINDOW_5M;
  else if (text == "1h")
    *window = analytics::WINDOW_1H;
  else if (text == "total")
    *window = analytics::WINDOW_TOTAL;
  else
    return false;
  return true;
}

std::vector<std::string> SplitList(const std::vector<std::string>& values) {
  std::vector<std::string> items;
  for (const std::string& value : values) {
    std::stringstream list(value);
    for (std::string item; std::getline(list, item, ',');) {
      if (!item.empty()) items.push_back(item);
    }
  }
  return items;
}

}  // namespace

int RunDashboardCli(const std::vector<std::string>& args, bool stdout_is_terminal,
                    const std::atomic<bool>& quit) {
  std::vector<std::string> value_flags = client::ConnectionValueFlags();
  for (const char* flag :
       {"metrics", "window", "interval", "history-seconds", "dashboard-id", "timeout-ms", "range",
        "filter", "breakdown", "breakdown-by", "breakdown-limit", "step"}) {
    value_flags.push_back(flag);
  }
  std::vector<std::string> switches = client::ConnectionSwitches();
  for (const char* flag : {"plain", "once", "json", "help", "compare"}) switches.push_back(flag);
  client::Flags flags(args, value_flags, switches);
  if (flags.Has("help")) {
    std::fputs(kUsage, stdout);
    std::fputs(client::kConnectionHelp, stdout);
    std::fputs(kUsageBody, stdout);
    return 0;
  }
  SubscriptionOptions options;
  client::ReadConnectionFlags(flags, &options.channel);
  analytics::Window window = analytics::WINDOW_1M;
  if (flags.Has("window") && !ParseWindow(flags.String("window"), &window)) {
    flags.Fail("--window: expected 1m, 5m or 1h, got \"" + flags.String("window") + "\"");
  }
  const auto interval = flags.Integer("interval", 0, 0, 3'600'000);
  const auto history = flags.Integer("history-seconds", 3'600, 0, 3'600);
  const auto timeout = flags.Integer("timeout-ms", 5'000, 100, 600'000);
  const std::string dashboard_id =
      flags.String("dashboard-id", "dash-" + std::to_string(::getpid()));
  const bool once = flags.Has("once");
  const bool plain = flags.Has("plain") || (!once && !stdout_is_terminal);
  if (flags.Has("json") && !once) flags.Fail("--json goes with --once");
  const bool range = flags.Has("range");
  for (const char* history_flag :
       {"breakdown", "breakdown-by", "breakdown-limit", "step", "compare"}) {
    if (flags.Has(history_flag) && !range) {
      flags.Fail(std::string("--") + history_flag + " goes with --range");
    }
  }
  if (range && !once) flags.Fail("--range goes with --once (the live view has no range yet)");
  RangeFlags range_flags;
  if (range) {
    range_flags.range = flags.String("range");
    range_flags.filters = flags.All("filter");
    range_flags.breakdown = flags.String("breakdown");
    range_flags.breakdown_by = flags.String("breakdown-by");
    range_flags.breakdown_limit = flags.Integer("breakdown-limit", 0, 1, 1000);
    range_flags.step = flags.String("step");
    range_flags.compare = flags.Has("compare");
    range_flags.metrics = SplitList(flags.All("metrics"));
  }
  if (!flags.positional().empty()) flags.Fail("unexpected argument " + flags.positional()[0]);
  if (!flags.error().empty()) {
    std::fprintf(stderr, "dashboard_client: %s (see dashboard_client --help)\n",
                 flags.error().c_str());
    return 2;
  }

  analytics::SubscriptionRequest& request = options.request;
  std::vector<std::string> metrics = SplitList(flags.All("metrics"));
  if (metrics.empty() && !once && !plain)
    metrics.assign(std::begin(kDashboardMetrics), std::end(kDashboardMetrics));
  for (const std::string& metric : metrics) request.add_metric_types(metric);
  request.set_dashboard_id(dashboard_id);
  request.set_interval_ms(static_cast<uint32_t>(interval));
  if (plain || (once && flags.Has("window"))) {
    request.add_windows(window);  // scripts get the one window they asked for
  } else if (!once) {
    for (analytics::Window w : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H}) {
      request.add_windows(w);
    }
  } else {
    // --once without --window prints every window, each one named (an empty list would get
    // only the server's --default-window).
    for (analytics::Window w : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                                analytics::WINDOW_TOTAL}) {
      request.add_windows(w);
    }
  }
  if (!once && !plain) request.set_history_seconds(static_cast<uint32_t>(history));
  std::string segment;  // --filter without --range: the live view of that segment
  if (!range) {
    if (std::string why; !ParseFilterFlags(flags.All("filter"), request.mutable_filters(), &why)) {
      std::fprintf(stderr, "dashboard_client: %s (see dashboard_client --help)\n", why.c_str());
      return 2;
    }
    for (const analytics::DimensionFilter& filter : request.filters()) {
      if (!segment.empty()) segment += ' ';
      segment += filter.dimension() + "=" + filter.value();
    }
  }

  std::string error;
  std::shared_ptr<grpc::Channel> channel = client::MakeChannel(options.channel, &error);
  if (!channel) {
    std::fprintf(stderr, "dashboard_client: %s\n", error.c_str());
    return 2;
  }
  const std::string servers = client::DescribeServers(options.channel);
  if (range) {
    analytics::RangeQuery query;
    if (!BuildRangeQuery(range_flags, &query, &error)) {
      std::fprintf(stderr, "dashboard_client: %s (see dashboard_client --help)\n", error.c_str());
      return 2;
    }
    return RunRangeOnce(channel, options.channel, query, flags.Has("json"),
                        std::chrono::milliseconds(timeout), stdout, stderr);
  }
  if (once) {
    return RunOnce(channel, options, flags.Has("json"), std::chrono::milliseconds(timeout), stdout,
                   stderr);
  }
  Subscription subscription(channel, options);
  if (plain) return RunPlain(subscription, servers, stdout, stderr, quit);
  ViewState view;
  view.server = servers;
  view.dashboard_id = dashboard_id;
  view.segment = segment;
  view.window = window;
  const ChatFactory open_chat = [&] {
    return std::make_unique<SupportChat>(channel, options.channel);
  };
  const HistoryFactory open_history = [&] {
    return std::make_unique<HistoryQueries>(channel, options.channel,
                                            std::chrono::milliseconds(timeout));
  };
  return RunTerminalUi(subscription, view, open_chat, open_history, quit);
}

}  // namespace rta::dashboard
