// dashboard_client: number formatting, the model, the layout at 80x24 and 200x50 (rendered into
// a character grid, no terminal), and the subscription against the real server on loopback.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "dashboard_client/dashboard_model.h"
#include "dashboard_client/format.h"
#include "dashboard_client/render.h"
#include "dashboard_client/screen.h"
#include "dashboard_client/script_modes.h"
#include "dashboard_client/subscription.h"
#include "tests/support/server_harness.h"

namespace {

using namespace rta::dashboard;
using analytics::MetricUpdate;

constexpr int64_t kNowMs = 1'764'000'000'000;

MetricUpdate Update(const std::string& metric, double value,
                    analytics::Window window = analytics::WINDOW_1M,
                    analytics::UpdateKind kind = analytics::UPDATE_KIND_SNAPSHOT,
                    int64_t time_ms = kNowMs) {
  MetricUpdate update;
  update.set_metric_type(metric);
  update.set_value(value);
  update.set_window(window);
  update.set_kind(kind);
  update.set_timestamp_ms(time_ms);
  update.set_timestamp(time_ms / 1000);
  update.set_epoch(7);
  update.set_sequence(1);
  return update;
}

MetricUpdate Top(const std::string& metric, std::vector<std::pair<std::string, uint64_t>> rows) {
  MetricUpdate update = Update(metric, 0);
  double total = 0;
  for (const auto& row : rows) total += static_cast<double>(row.second);
  update.set_value(total);
  for (const auto& [key, count] : rows) {
    analytics::TopEntry* entry = update.add_top();
    entry->set_key(key);
    entry->set_count(count);
    entry->set_share(static_cast<double>(count) / total);
  }
  return update;
}

MetricUpdate Dimension(const std::string& metric, const std::string& label,
                       const std::string& value, double count) {
  MetricUpdate update = Update(metric, count);
  (*update.mutable_labels())[label] = value;
  return update;
}

// A model like a busy site's: every tile, table and breakdown has data, with an hour of history.
DashboardModel BusyModel() {
  DashboardModel model;
  for (int64_t s = 3'600; s >= 1; --s) {
    const int64_t t = kNowMs - s * 1000;
    model.Apply(Update("events_per_second", 100 + static_cast<double>(s % 60), analytics::WINDOW_1M,
                       analytics::UPDATE_KIND_HISTORY, t));
    model.Apply(Update("page_views", 1'000 + static_cast<double>(s), analytics::WINDOW_1M,
                       analytics::UPDATE_KIND_HISTORY, t));
  }
  model.Apply(Update("events_per_second", 123));
  model.Apply(Update("page_views", 48'213));
  model.Apply(Update("unique_visitors", 1'234'567));
  model.Apply(Update("active_sessions", 812));
  model.Apply(Update("conversion_rate", 0.0342));
  model.Apply(Update("revenue", 12'345.6));
  model.Apply(Update("bounce_rate", 0.41));
  model.Apply(Update("page_load_ms_p95", 1'840));
  std::vector<std::pair<std::string, uint64_t>> pages;
  for (int i = 1; i <= 10; ++i) {
    pages.push_back({"/products/a-very-long-product-name-that-does-not-fit-" + std::to_string(i),
                     static_cast<uint64_t>(1'000 - i * 50)});
  }
  model.Apply(Top("top_pages", pages));
  model.Apply(Top("top_referrers", {{"google.com", 500}, {"facebook.com", 120}}));
  model.Apply(Top("top_campaigns", {{"black_friday", 90}}));
  model.Apply(Dimension("events_by_country", "country", "US", 300));
  model.Apply(Dimension("events_by_country", "country", "DE", 100));
  model.Apply(Dimension("events_by_device", "device", "mobile", 250));
  model.Apply(Dimension("events_by_device", "device", "desktop", 150));
  return model;
}

ViewState ConnectedView() {
  ViewState view;
  view.server = "127.0.0.1:50051";
  view.dashboard_id = "dash-test";
  view.link = LinkState::kConnected;
  view.seconds_since_update = 0.4;
  return view;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("numbers are short and readable", "[dashboard][format]") {
  CHECK(FormatCount(0) == "0");
  CHECK(FormatCount(999) == "999");
  CHECK(FormatCount(12.5) == "12.5");
  CHECK(FormatCount(48'213) == "48,213");
  CHECK(FormatCount(123'456) == "123.5k");
  CHECK(FormatCount(1'234'567) == "1.23M");
  CHECK(FormatCount(-1'500) == "-1,500");
  CHECK(FormatCount(NAN) == "—");
  CHECK(FormatMoney(1'234.5) == "$1,234.50");
  CHECK(FormatMoney(0.07) == "$0.07");
  CHECK(FormatMoney(250'000) == "$250.0k");
  CHECK(FormatPercent(0.0342) == "3.42%");
  CHECK(FormatPercent(0.41) == "41.0%");
  CHECK(FormatMs(842) == "842 ms");
  CHECK(FormatMs(1'520) == "1.52 s");
  CHECK(FormatAge(0.4) == "0.4 s");
  CHECK(FormatAge(300) == "5 min");
}

TEST_CASE("change against the previous period", "[dashboard][format]") {
  CHECK(FormatChange(100, 112) == "▲ 12%");
  CHECK(FormatChange(100, 96.6) == "▼ 3.4%");
  CHECK(FormatChange(100, 100) == "= 0%");
  CHECK(FormatChange(0, 5) == "▲ new");
  CHECK(FormatChange(0, 0) == "");
  CHECK(FormatChange(NAN, 5) == "");
  CHECK(FormatChange(1, 100) == "▲ >999%");
}

TEST_CASE("sparklines scale between min and max and fit their width", "[dashboard][format]") {
  CHECK(Sparkline({0, 1, 2, 3, 4, 5, 6, 7}, 8) == "▁▂▃▄▅▆▇█");
  CHECK(Sparkline({5, 5, 5}, 3) == "▄▄▄");    // flat
  CHECK(Sparkline({1, 2}, 4) == "  ▁█");      // fewer values than columns: right-aligned
  CHECK(Sparkline({NAN, 1, 2}, 3) == " ▁█");  // no data is blank
  std::vector<double> many(3'600);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<double>(i);
  const std::string line = Sparkline(many, 20);
  CHECK(DisplayWidth(line) == 20);
  CHECK(line.rfind("▁", 0) == 0);
  CHECK(line.substr(line.size() - 3) == "█");
}

TEST_CASE("taller charts: bars of eighths over several lines", "[dashboard][format]") {
  const std::vector<double> ramp = {0, 1, 2, 3};
  // Two lines: 16 eighths; 0 is the floor (one eighth), 3 is full height.
  const auto chart = SparkChart(ramp, 4, 2);
  REQUIRE(chart.size() == 2);
  CHECK(chart[0] == "  ▃█");
  CHECK(chart[1] == "▁▆██");
  CHECK(SparkChart({5, 5}, 3, 2) == std::vector<std::string>{"   ", " ██"});  // flat: half
  CHECK(SparkChart({NAN, 1, 2}, 3, 3)[2] == " ▁█");
  // One line is exactly the sparkline.
  for (const std::vector<double>& values :
       {std::vector<double>{3, 1, 4, 1, 5, 9, 2, 6}, std::vector<double>{0, 0.5, 1}}) {
    CHECK(SparkChart(values, 5, 1)[0] == Sparkline(values, 5));
  }
}

TEST_CASE("without a UTF-8 locale the grid is drawn in ASCII", "[dashboard][render]") {
  Screen screen(80, 24);
  RenderDashboard(BusyModel(), ConnectedView(), &screen);
  std::wstring ascii;
  int unmatched = 0;  // every character the layout uses has an ASCII stand-in
  for (int y = 0; y < screen.height(); ++y) {
    for (int x = 0; x < screen.width(); ++x) {
      ascii += AsciiFallback(screen.At(x, y));
      unmatched += screen.At(x, y) >= 0x80 && ascii.back() == L'?';
    }
  }
  CHECK(std::all_of(ascii.begin(), ascii.end(), [](wchar_t c) { return c >= 0x20 && c < 0x7F; }));
  CHECK(unmatched == 0);
  CHECK(ascii.find(L"+- Page views ---") != std::wstring::npos);
  CHECK(EncodeUtf8(std::wstring(1, AsciiFallback(L'█'))) == "#");
  CHECK(AsciiFallback(L'▁') == L'_');
  CHECK(AsciiFallback(L'▲') == L'^');
  CHECK(AsciiFallback(L'é') == L'?');
}

TEST_CASE("text is cut to fit with an ellipsis", "[dashboard][format]") {
  CHECK(Truncate("short", 10) == "short");
  CHECK(Truncate("/products/long-name", 8) == "/produc…");
  CHECK(DisplayWidth(Truncate("ünïcödé-text", 5)) == 5);
}

TEST_CASE("the model keeps values, history, top lists and breakdowns", "[dashboard][model]") {
  DashboardModel model;
  model.Apply(Update("page_views", 10, analytics::WINDOW_1M, analytics::UPDATE_KIND_HISTORY,
                     kNowMs - 60'000));
  model.Apply(Update("page_views", 20, analytics::WINDOW_1M, analytics::UPDATE_KIND_HISTORY,
                     kNowMs - 30'000));
  model.Apply(Update("page_views", 40));
  model.Apply(Update("page_views", 400, analytics::WINDOW_5M));
  MetricUpdate end;
  end.set_kind(analytics::UPDATE_KIND_SNAPSHOT_END);
  model.Apply(end);
  CHECK(model.snapshot_complete());
  CHECK(model.Value("page_views", analytics::WINDOW_1M) == 40);
  CHECK(model.Value("page_views", analytics::WINDOW_5M) == 400);
  CHECK(std::isnan(model.Value("revenue", analytics::WINDOW_1M)));
  const int64_t now = kNowMs / 1000;
  CHECK(model.ValueAt("page_views", analytics::WINDOW_1M, now - 60) == 10);
  CHECK(model.ValueAt("page_views", analytics::WINDOW_1M, now - 45) == 10);
  CHECK(model.ValueAt("page_views", analytics::WINDOW_1M, now - 1) == 20);
  CHECK(std::isnan(model.ValueAt("page_views", analytics::WINDOW_1M, now - 61)));
  const std::vector<double> series =
      model.Series("page_views", analytics::WINDOW_1M, now - 61, now);
  REQUIRE(series.size() == 62);
  CHECK(std::isnan(series[0]));
  CHECK(series[1] == 10);
  CHECK(series.back() == 40);

  // A delta replaces the value; the latest value of a second wins in the history.
  MetricUpdate delta = Update("page_views", 45);
  delta.set_kind(analytics::UPDATE_KIND_DELTA);
  delta.set_sequence(2);
  delta.set_skipped(3);
  model.Apply(delta);
  CHECK(model.Value("page_views", analytics::WINDOW_1M) == 45);
  CHECK(model.ValueAt("page_views", analytics::WINDOW_1M, now) == 45);
  CHECK(model.sequence() == 2);
  CHECK(model.skipped_total() == 3);
  CHECK(model.epoch() == 7);

  model.Apply(Dimension("events_by_country", "country", "DE", 5));
  model.Apply(Dimension("events_by_country", "country", "US", 9));
  model.Apply(Dimension("events_by_country", "country", "FR", 0));  // gone from the window
  const auto breakdown = model.Breakdown("events_by_country", analytics::WINDOW_1M);
  REQUIRE(breakdown.size() == 2);
  CHECK(breakdown[0].first == "US");
  CHECK(breakdown[1].first == "DE");

  model.Apply(Top("top_pages", {{"/a", 3}, {"/b", 1}}));
  REQUIRE(model.Top("top_pages", analytics::WINDOW_1M).size() == 2);
  CHECK(model.Top("top_pages", analytics::WINDOW_1M)[0].share == Approx(0.75));

  model.Reset();
  CHECK(std::isnan(model.Value("page_views", analytics::WINDOW_1M)));
  CHECK(model.Top("top_pages", analytics::WINDOW_1M).empty());
}

TEST_CASE("layout at 80x24: every tile, trimmed tables, the status line", "[dashboard][render]") {
  const DashboardModel model = BusyModel();
  Screen screen(80, 24);
  RenderDashboard(model, ConnectedView(), &screen);
  const std::string text = screen.Text();
  INFO(text);
  for (const char* title :
       {"Events/s", "Page views", "Unique visitors", "Active sessions", "Conversion rate",
        "Revenue", "Bounce rate", "p95 page load", "Top pages", "Top referrers", "Top campaigns",
        "Countries", "Devices"}) {
    CHECK(Contains(text, title));
  }
  for (const char* value : {"48,213", "1.23M", "812", "3.42%", "$12,345.60", "41.0%", "1.84 s",
                            "google.com", "black_friday", "US", "mobile", "75%"}) {
    CHECK(Contains(text, value));
  }
  // Page views were 1,060 one minute ago (the history): the tile shows the rise.
  CHECK(Contains(screen.RowText(2), "▲"));
  // Sparklines from the history.
  CHECK(Contains(screen.RowText(3), "█"));
  // Long keys are cut to the column, and only the rows that fit are shown.
  CHECK(Contains(text, "/products/a-very-long-pr…"));
  CHECK(!Contains(text, "does-not-fit"));
  // The title keeps the two keys a newcomer needs.
  CHECK(Contains(screen.RowText(0), "window 1m"));
  CHECK(Contains(screen.RowText(0), "? help  q quit"));
  const std::string status = screen.RowText(23);
  CHECK(Contains(status, "127.0.0.1:50051"));
  CHECK(Contains(status, "● connected"));
  // At 80 columns the segments drop their labels to fit.
  CHECK(Contains(status, "│ 0.4 s ago │ 1m │"));
  CHECK(Contains(status, "dash-test"));
  CHECK(Contains(status, "skipped 0"));
  for (int y = 0; y < 24; ++y) CHECK(DisplayWidth(screen.RowText(y)) <= 80);
}

TEST_CASE("layout at 200x50: tiles in one row, all tables side by side, more rows",
          "[dashboard][render]") {
  const DashboardModel model = BusyModel();
  Screen screen(200, 50);
  RenderDashboard(model, ConnectedView(), &screen);
  const std::string text = screen.Text();
  INFO(text);
  // All eight tiles in the first row of tiles.
  const std::string tile_titles = screen.RowText(1);
  for (const char* title : {"Events/s", "Revenue", "p95 page load"}) {
    CHECK(Contains(tile_titles, title));
  }
  // The tables need 11 lines (header and ten entries); the rest of the height goes to the
  // tiles: charts 8 lines tall (rows 3 to 10), the last minute of the history.
  CHECK(Contains(screen.RowText(11), "└"));
  // Events/s fell from 159 to 101 over the minute: full bars on the left of the top line
  // (x = 2 to 22 inside the first tile), a bar in every column of the bottom line.
  int top_blanks = 0;
  int bottom_blanks = 0;
  for (int x = 2; x <= 22; ++x) {
    top_blanks += screen.At(x, 3) == L' ';
    bottom_blanks += screen.At(x, 10) == L' ';
  }
  CHECK(screen.At(2, 3) == L'█');
  CHECK(top_blanks > 10);
  CHECK(bottom_blanks == 0);
  // The five tables share one header row, under the tiles.
  const std::string headers = screen.RowText(12);
  for (const char* title :
       {"Top pages", "Top referrers", "Top campaigns", "Countries", "Devices"}) {
    CHECK(Contains(headers, title));
  }
  // Every one of the ten top pages fits.
  CHECK(Contains(text, "fit-10") == false);  // still trimmed at 40 columns
  int page_rows = 0;
  for (int y = 0; y < 50; ++y) page_rows += Contains(screen.RowText(y), "/products/a-");
  CHECK(page_rows == 10);
}

TEST_CASE("status line: reconnecting, refused token, paused, skipped, help, too small",
          "[dashboard][render]") {
  DashboardModel model = BusyModel();
  ViewState view = ConnectedView();
  SECTION("reconnecting") {
    view.link = LinkState::kReconnecting;
    view.reconnect_in_seconds = 2.3;
    view.link_message = "server unreachable at 127.0.0.1:50051 (UNAVAILABLE)";
    Screen screen(80, 24);
    RenderDashboard(model, view, &screen);
    CHECK(Contains(screen.RowText(23), "● reconnecting in 3 s"));
    CHECK(Contains(screen.RowText(22), "server unreachable at 127.0.0.1:50051 (UNAVAILABLE)"));
  }
  SECTION("refused token") {
    view.link = LinkState::kRefused;
    view.link_message = "the server refused the token; check --token (UNAUTHENTICATED: bad token)";
    Screen screen(80, 24);
    RenderDashboard(model, view, &screen);
    CHECK(Contains(screen.RowText(23), "● unauthenticated"));
  }
  SECTION("paused, with skipped updates") {
    MetricUpdate delta = Update("page_views", 1);
    delta.set_kind(analytics::UPDATE_KIND_DELTA);
    delta.set_skipped(4);
    model.Apply(delta);
    view.paused = true;
    Screen screen(120, 30);
    RenderDashboard(model, view, &screen);
    CHECK(Contains(screen.RowText(29), "skipped 4"));
    CHECK(Contains(screen.RowText(29), "PAUSED"));
  }
  SECTION("a live segment is named in the status line") {
    view.segment = "utm_campaign=spring country=DE";
    Screen screen(160, 30);
    RenderDashboard(model, view, &screen);
    CHECK(Contains(screen.RowText(29), "segment utm_campaign=spring country=DE"));
  }
  SECTION("help overlay") {
    view.help = true;
    Screen screen(80, 24);
    RenderDashboard(model, view, &screen);
    CHECK(Contains(screen.Text(), "switch window: 1m → 5m → 1h"));
  }
  SECTION("window 1h") {
    view.window = analytics::WINDOW_1H;
    Screen screen(80, 24);
    RenderDashboard(model, view, &screen);
    CHECK(Contains(screen.RowText(0), "window 1h"));
    CHECK(NextWindow(analytics::WINDOW_1H) == analytics::WINDOW_1M);
  }
  SECTION("too small") {
    Screen screen(30, 8);
    RenderDashboard(model, view, &screen);
    CHECK(Contains(screen.RowText(0), "Terminal too small: 30x8"));
  }
}

TEST_CASE("plain lines and the --once JSON document", "[dashboard][script]") {
  CHECK(PlainLine(Update("page_views", 1234)) == "Updated metric: page_views = 1234 (1m)");
  CHECK(PlainLine(Dimension("events_by_country", "country", "DE", 12)) ==
        "Updated metric: events_by_country{country=DE} = 12 (1m)");
  CHECK(PlainLine(Top("top_pages", {{"/a", 3}, {"/b", 1}})) ==
        "Updated metric: top_pages = 4 (1m) top: /a 3, /b 1");
  const auto json = SnapshotJson({Update("page_views", 7), Top("top_pages", {{"/a", 3}}),
                                  Dimension("events_by_device", "device", "mobile", 2)},
                                 "s:1");
  CHECK(json["metrics"]["page_views"]["1m"] == 7);
  CHECK(json["metrics"]["top_pages"]["1m"]["top"][0]["key"] == "/a");
  CHECK(json["metrics"]["events_by_device"]["1m"]["mobile"] == 2);
  CHECK(json["epoch"] == 7);
}

TEST_CASE("failures are described in words", "[dashboard][subscription]") {
  const std::string server = "10.0.0.1:50051";
  CHECK(DescribeFailure({grpc::StatusCode::UNAVAILABLE,
                         "failed to connect to all addresses; last error: Connection refused"},
                        server) == "server unreachable at 10.0.0.1:50051 (UNAVAILABLE)");
  CHECK(DescribeFailure({grpc::StatusCode::UNAVAILABLE,
                         "DNS resolution failed for nope:50051: Domain name not found"},
                        "nope:50051") ==
        "cannot resolve the server address nope:50051 (UNAVAILABLE)");
  CHECK(DescribeFailure({grpc::StatusCode::UNAVAILABLE, "server shutting down"}, server) ==
        "lost the server at 10.0.0.1:50051 (UNAVAILABLE: server shutting down)");
  CHECK(DescribeFailure({grpc::StatusCode::UNAUTHENTICATED, "bad token"}, server) ==
        "the server refused the token; check --token (UNAUTHENTICATED: bad token)");
  CHECK(Contains(DescribeFailure({grpc::StatusCode::INVALID_ARGUMENT, "metric_types: x"}, server),
                 "refused the subscription (INVALID_ARGUMENT: metric_types: x)"));
  CHECK(DescribeFailure({grpc::StatusCode::INVALID_ARGUMENT, "filters[0].dimension: x"}, server,
                        CallKind::kQuery) ==
        "the server refused the query (INVALID_ARGUMENT: filters[0].dimension: x)");
  CHECK(Contains(DescribeFailure({grpc::StatusCode::UNIMPLEMENTED, "filters: 3 conditions"}, server,
                                 CallKind::kQuery),
                 "cannot answer this query (UNIMPLEMENTED"));
  CHECK(DescribeFailure({grpc::StatusCode::INTERNAL, "disk"}, server, CallKind::kQuery) ==
        "the query to 10.0.0.1:50051 failed (INTERNAL: disk)");
}

TEST_CASE("the subscription feeds the model from the real server", "[dashboard][subscription]") {
  rta::testing::ServerHarness server;
  const int64_t now = rta::testing::NowMs();
  std::vector<analytics::EventData> events;
  for (int i = 0; i < 5; ++i) {
    const std::string n = std::to_string(i);
    events.push_back(rta::testing::MakeEvent(std::string("e").append(n), "page_view", now,
                                             std::string("v").append(n),
                                             std::string("s").append(n)));
  }
  REQUIRE(server.ReportBatch(events).accepted() == 5);
  server.server().TickForTest();

  SubscriptionOptions options;
  options.channel.servers = {server.address()};
  options.request.add_metric_types("page_views");
  options.request.add_metric_types("unique_visitors");
  rta::testing::AddEveryWindow(options.request.mutable_windows());  // as the dashboard asks
  options.request.set_history_seconds(60);
  std::string error;
  Subscription subscription(rta::client::MakeChannel(options.channel, &error), options);
  DashboardModel model;
  std::vector<MetricUpdate> updates;
  const bool filled = rta::testing::WaitFor([&] {
    updates.clear();
    const SubscriptionStatus status = subscription.Drain(&updates);
    if (status.reset) model.Reset();
    for (const auto& update : updates) model.Apply(update);
    return model.snapshot_complete() && status.link == LinkState::kConnected;
  });
  REQUIRE(filled);
  CHECK(model.Value("page_views", analytics::WINDOW_1M) == 5);
  CHECK(model.Value("unique_visitors", analytics::WINDOW_1M) == 5);

  // A live change arrives as a delta.
  REQUIRE(server.ReportBatch({rta::testing::MakeEvent("e9", "page_view", now, "v9", "s9")})
              .accepted() == 1);
  server.server().TickForTest();
  CHECK(rta::testing::WaitFor([&] {
    updates.clear();
    subscription.Drain(&updates);
    for (const auto& update : updates) model.Apply(update);
    return model.Value("page_views", analytics::WINDOW_1M) == 6;
  }));
}

TEST_CASE("a reconnect resumes from the last sequence instead of a full snapshot",
          "[dashboard][subscription]") {
  rta::testing::ServerHarness server;
  SubscriptionOptions options;
  options.channel.servers = {server.address()};
  options.request.add_metric_types("page_views");
  options.request.add_windows(analytics::WINDOW_TOTAL);
  std::string error;
  Subscription subscription(rta::client::MakeChannel(options.channel, &error), options);
  std::vector<MetricUpdate> updates;
  SubscriptionStatus status;
  // The first stream starts from a full snapshot: the caller is told to reset.
  bool reset_seen = false;
  REQUIRE(rta::testing::WaitFor([&] {
    status = subscription.Drain(&updates);
    reset_seen |= status.reset;
    return status.link == LinkState::kConnected && !updates.empty();
  }));
  CHECK(reset_seen);
  CHECK_FALSE(updates.front().recovered());

  // A change while we reconnect: the resumed stream brings it, with recovered = true.
  subscription.ReconnectNow();
  server.ReportBatch({rta::testing::MakeEvent("r1", "page_view", server.clock().NowMs())});
  server.server().TickForTest();
  updates.clear();
  reset_seen = false;
  bool recovered = false;
  double page_views = 0;
  CHECK(rta::testing::WaitFor([&] {
    status = subscription.Drain(&updates);
    reset_seen |= status.reset;
    for (const auto& update : updates) {
      recovered |= update.recovered();
      if (update.metric_type() == "page_views") page_views = update.value();
    }
    return recovered && page_views == 1;
  }));
  CHECK(recovered);
  CHECK_FALSE(reset_seen);
  CHECK(page_views == 1);
}

namespace {

// Subscribes to `server` (with `metric` if given) and returns the status once the link reaches
// `state` (or the last status seen after 10 s).
SubscriptionStatus LinkStatusOnceIn(const std::string& server, const std::string& metric,
                                    LinkState state) {
  SubscriptionOptions options;
  options.channel.servers = {server};
  if (!metric.empty()) options.request.add_metric_types(metric);
  std::string error;
  Subscription subscription(rta::client::MakeChannel(options.channel, &error), options);
  std::vector<MetricUpdate> updates;
  SubscriptionStatus status;
  rta::testing::WaitFor([&] {
    status = subscription.Drain(&updates);
    return status.link == state;
  });
  return status;
}

}  // namespace

TEST_CASE("the subscription reports an unreachable server and a refused request",
          "[dashboard][subscription]") {
  SECTION("unreachable: reconnecting, with the reason in words") {
    // Nothing listens on port 1.
    const SubscriptionStatus status = LinkStatusOnceIn("127.0.0.1:1", "", LinkState::kReconnecting);
    CHECK(status.link == LinkState::kReconnecting);
    CHECK(status.message == "server unreachable at 127.0.0.1:1 (UNAVAILABLE)");
  }
  SECTION("an unknown metric: refused, no reconnect loop") {
    rta::testing::ServerHarness server;
    const SubscriptionStatus status =
        LinkStatusOnceIn(server.address(), "no_such_metric", LinkState::kRefused);
    CHECK(status.link == LinkState::kRefused);
    CHECK(Contains(status.message, "INVALID_ARGUMENT"));
    CHECK(Contains(status.message, "no_such_metric"));
  }
}

namespace {

// A stand-in for a server that checks bearer tokens (analytics_server has no authentication of
// its own; a proxy in front of it would): SubscribeMetricBatches refuses a missing or wrong
// token with UNAUTHENTICATED, and with the right one sends a one-metric snapshot and holds the
// stream open until the client cancels. With `silent`, it never answers at all (a stuck server).
class FakeAuthServer final : public analytics::AnalyticsService::Service {
 public:
  explicit FakeAuthServer(bool silent = false) : silent_(silent) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeAuthServer() override {
    // Streams still open are cancelled at the deadline, which ends their handlers' waits.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string last_authorization() {
    std::lock_guard lock(mutex_);
    return last_authorization_;
  }

  grpc::Status SubscribeMetricBatches(
      grpc::ServerContext* context, const analytics::SubscriptionRequest*,
      grpc::ServerWriter<analytics::MetricUpdateBatch>* writer) override {
    const auto& metadata = context->client_metadata();
    const auto it = metadata.find("authorization");
    const std::string authorization =
        it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
    {
      std::lock_guard lock(mutex_);
      last_authorization_ = authorization;
    }
    if (!silent_) {
      if (authorization != "Bearer s3cret") {
        return {grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token"};
      }
      analytics::MetricUpdateBatch batch;
      *batch.add_updates() = Update("page_views", 42);
      batch.add_updates()->set_kind(analytics::UPDATE_KIND_SNAPSHOT_END);
      writer->Write(batch);
    }
    while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return grpc::Status::CANCELLED;
  }

 private:
  const bool silent_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mutex_;
  std::string last_authorization_;  // guarded by mutex_
};

// Everything a FILE* received, for the script modes' output.
std::string ReadBack(FILE* file) {
  std::string text;
  std::rewind(file);
  for (int c; (c = std::fgetc(file)) != EOF;) text += static_cast<char>(c);
  return text;
}

}  // namespace

TEST_CASE("the token goes out as a bearer header, a refused one stops the retries",
          "[dashboard][subscription]") {
  FakeAuthServer server;
  SubscriptionOptions options;
  options.channel.servers = {server.address()};
  SECTION("accepted") {
    options.channel.token = "s3cret";
    std::string error;
    Subscription subscription(rta::client::MakeChannel(options.channel, &error), options);
    DashboardModel model;
    std::vector<MetricUpdate> updates;
    REQUIRE(rta::testing::WaitFor([&] {
      updates.clear();
      const SubscriptionStatus status = subscription.Drain(&updates);
      for (const auto& update : updates) model.Apply(update);
      return status.link == LinkState::kConnected && model.snapshot_complete();
    }));
    CHECK(server.last_authorization() == "Bearer s3cret");
    CHECK(model.Value("page_views", analytics::WINDOW_1M) == 42);
  }
  SECTION("refused: unauthenticated on the status line, no reconnect loop") {
    options.channel.token = "wrong";
    std::string error;
    Subscription subscription(rta::client::MakeChannel(options.channel, &error), options);
    std::vector<MetricUpdate> updates;
    SubscriptionStatus status;
    REQUIRE(rta::testing::WaitFor([&] {
      status = subscription.Drain(&updates);
      return status.link == LinkState::kRefused;
    }));
    CHECK(server.last_authorization() == "Bearer wrong");
    CHECK(Contains(status.message, "the server refused the token; check --token (UNAUTHENTICATED"));
    ViewState view = ConnectedView();
    view.link = status.link;
    view.link_message = status.message;
    Screen screen(80, 24);
    RenderDashboard(DashboardModel(), view, &screen);
    CHECK(Contains(screen.RowText(23), "● unauthenticated"));
    CHECK(Contains(screen.RowText(22), "check --token"));
  }
  SECTION("no token at all") {
    const SubscriptionStatus status = LinkStatusOnceIn(server.address(), "", LinkState::kRefused);
    CHECK(status.link == LinkState::kRefused);
    CHECK(server.last_authorization().empty());
  }
}

TEST_CASE("once: the snapshot as JSON, or a clear message and exit 1", "[dashboard][script]") {
  SubscriptionOptions options;
  rta::testing::AddEveryWindow(options.request.mutable_windows());  // as --once asks
  const auto run_once = [&](const std::string& address, std::chrono::milliseconds timeout,
                            std::string* out_text, std::string* err_text) {
    options.channel.servers = {address};
    std::string error;
    const auto channel = rta::client::MakeChannel(options.channel, &error);
    FILE* out = std::tmpfile();
    FILE* err = std::tmpfile();
    const int status = RunOnce(channel, options, /*as_json=*/true, timeout, out, err);
    *out_text = ReadBack(out);
    *err_text = ReadBack(err);
    std::fclose(out);
    std::fclose(err);
    return status;
  };
  std::string out;
  std::string err;
  SECTION("from the real server") {
    rta::testing::ServerHarness server;
    const int64_t now = rta::testing::NowMs();
    std::vector<analytics::EventData> events = {
        rta::testing::MakeEvent("o1", "page_view", now, "v1", "s1"),
        rta::testing::MakeEvent("o2", "page_view", now, "v2", "s2"),
        rta::testing::MakeEvent("o3", "purchase", now, "v1", "s1")};
    events[2].set_value(19.99);
    REQUIRE(server.ReportBatch(events).accepted() == 3);
    REQUIRE(server.Metric("page_views", analytics::WINDOW_1M) == 2);  // ticks
    REQUIRE(run_once(server.address(), std::chrono::seconds(5), &out, &err) == 0);
    INFO(out << err);
    const auto json = nlohmann::json::parse(out);
    CHECK(json["metrics"]["page_views"]["1m"] == 2);
    CHECK(json["metrics"]["revenue"]["total"].get<double>() == Approx(19.99));
    CHECK(json["metrics"]["unique_visitors"]["5m"] == 2);
    CHECK(json["server"] == server.address());
  }
  SECTION("a server that never answers: the deadline, in words") {
    FakeAuthServer server(/*silent=*/true);
    CHECK(run_once(server.address(), std::chrono::milliseconds(300), &out, &err) == 1);
    CHECK(out.empty());
    CHECK(Contains(err, "no snapshot from " + server.address() + " within 300 ms"));
  }
  SECTION("a refused token") {
    FakeAuthServer server;
    CHECK(run_once(server.address(), std::chrono::seconds(5), &out, &err) == 1);
    CHECK(Contains(err,
                   "the server refused the token; check --token (UNAUTHENTICATED: invalid "
                   "bearer token)"));
  }
}
