#include "dashboard_client/render.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <span>

#include "dashboard_client/format.h"

namespace rta::dashboard {
namespace {

constexpr int kMinWidth = 40;
constexpr int kMinHeight = 12;
constexpr int kTileHeight = kKpiTileHeight;
constexpr int kMaxChartRows = 8;
// A table row wants its header and all ten entries of a top-k list before tiles grow taller.
constexpr int kFullTableRows = 11;

// Shares in a table column of 5: "13%", "100%", "9.7%".
std::string FormatShare(double share) {
  char text[16];
  std::snprintf(text, sizeof text, share >= 0.0995 ? "%.0f%%" : "%.1f%%", share * 100);
  return text;
}

constexpr Kpi kKpis[] = {
    {"Events/s", "events_per_second", FormatCount, true},
    {"Page views", "page_views", FormatCount, true},
    {"Unique visitors", "unique_visitors", FormatCount, true},
    {"Active sessions", "active_sessions", FormatCount, true},
    {"Conversion rate", "conversion_rate", FormatPercent, true},
    {"Revenue", "revenue", FormatMoney, true},
    {"Bounce rate", "bounce_rate", FormatPercent, false},
    {"p95 page load", "page_load_ms_p95", FormatMs, false},
};

void DrawTitle(const ViewState& view, Screen* screen) {
  screen->Fill(0, 0, screen->width(), L' ', Style::kTitle);
  screen->Put(1, 0, "Real-time analytics · window " + WindowLabel(view.window), Style::kTitle);
  // Every key when they fit, else the two that matter most to someone new.
  for (const std::string keys :
       {"w window  t history  p pause  r reconnect  c chat  ? help  q quit ", "? help  q quit "}) {
    if (static_cast<int>(DisplayWidth(keys)) + 36 <= screen->width()) {
      screen->PutRight(screen->width(), 0, keys, Style::kTitle);
      break;
    }
  }
}

void DrawTile(const DashboardModel& model, const ViewState& view, const Kpi& kpi, int x, int y,
              int width, int chart_rows, Screen* screen) {
  const double value = model.Value(kpi.metric, view.window);
  // The change against the previous period: the value one window length ago.
  const int64_t now = model.latest_ms() / 1000;
  const int64_t span = WindowSeconds(view.window);
  const double previous = model.ValueAt(kpi.metric, view.window, now - span);
  const std::vector<double> series = model.Series(kpi.metric, view.window, now - span + 1, now);
  DrawKpiTile(kpi.title, kpi.format(value), previous, value, kpi.higher_is_better, series, x, y,
              width, chart_rows, screen);
}

// A table with a header line: key, count, share; as many rows as fit.
void DrawTable(const std::string& title, const std::vector<TopRow>& rows, int x, int y, int width,
               int height, Screen* screen) {
  if (height < 2 || width < 12) return;
  const int count_width = 6;
  const int share_width = 5;
  const int key_width = std::max(width - count_width - share_width - 2, 4);
  screen->Put(x, y, Truncate(title, static_cast<size_t>(key_width)), Style::kHeader);
  screen->PutRight(x + key_width + 1 + count_width, y, "count", Style::kDim);
  screen->PutRight(x + width, y, "share", Style::kDim);
  if (rows.empty()) {
    screen->Put(x, y + 1, "(no data yet)", Style::kDim, width);
    return;
  }
  for (int i = 0; i < height - 1 && i < static_cast<int>(rows.size()); ++i) {
    const TopRow& row = rows[static_cast<size_t>(i)];
    screen->Put(x, y + 1 + i,
                Truncate(row.key.empty() ? "(none)" : row.key, static_cast<size_t>(key_width)));
    screen->PutRight(x + key_width + 1 + count_width, y + 1 + i, FormatCount(row.count));
    screen->PutRight(x + width, y + 1 + i, FormatShare(row.share), Style::kDim);
  }
}

std::vector<TopRow> BreakdownRows(const DashboardModel& model, const char* metric,
                                  analytics::Window window) {
  const auto breakdown = model.Breakdown(metric, window);
  double total = 0;
  for (const auto& [label, value] : breakdown) total += value;
  std::vector<TopRow> rows;
  for (const auto& [label, value] : breakdown) {
    rows.push_back(
        {label == "__other__" ? "(other)" : label, value, total > 0 ? value / total : 0});
  }
  return rows;
}

void DrawStatus(const DashboardModel& model, const ViewState& view, Screen* screen) {
  const int y = screen->height() - 1;
  struct Segment {
    std::string long_text;
    std::string short_text;  // for narrow terminals
    Style style;
  };
  std::string link;
  Style link_style = Style::kWarn;
  switch (view.link) {
    case LinkState::kConnecting:
      link = "● connecting";
      break;
    case LinkState::kConnected:
      link = "● connected";
      link_style = Style::kGood;
      break;
    case LinkState::kReconnecting: {
      char text[64];
      std::snprintf(text, sizeof text, "● reconnecting in %.0f s",
                    std::max(std::ceil(view.reconnect_in_seconds), 0.0));
      link = text;
      break;
    }
    case LinkState::kRefused:
      link = view.link_message.find("UNAUTHENTICATED") != std::string::npos ? "● unauthenticated"
                                                                            : "● refused";
      link_style = Style::kBad;
      break;
  }
  const std::string age =
      view.seconds_since_update < 0 ? "never" : FormatAge(view.seconds_since_update) + " ago";
  const std::string skipped = "skipped " + std::to_string(model.skipped_total());
  std::vector<Segment> segments = {
      {view.server, view.server, Style::kNormal},
      {link, link, link_style},
      {"updated " + age, age, Style::kNormal},
      {"window " + WindowLabel(view.window), WindowLabel(view.window), Style::kNormal},
  };
  if (!view.segment.empty()) {
    segments.push_back({"segment " + view.segment, view.segment, Style::kWarn});
  }
  segments.insert(segments.end(),
                  {
                      {"id " + view.dashboard_id, view.dashboard_id, Style::kDim},
                      {skipped, skipped, model.skipped_total() > 0 ? Style::kWarn : Style::kDim},
                  });
  if (view.paused) segments.push_back({"PAUSED (p resumes)", "PAUSED", Style::kWarn});
  size_t long_width = 0;
  for (const Segment& segment : segments) long_width += DisplayWidth(segment.long_text) + 3;
  const bool narrow = static_cast<int>(long_width) + 1 > screen->width();
  screen->Fill(0, y, screen->width(), L' ', Style::kNormal);
  int x = 1;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) {
      screen->Put(x, y, " │ ", Style::kDim);
      x += 3;
    }
    const std::string& text = narrow ? segments[i].short_text : segments[i].long_text;
    screen->Put(x, y, text, segments[i].style);
    x += static_cast<int>(DisplayWidth(text));
  }
  // Why we are not connected, in words, on the line above the status line.
  if (view.link != LinkState::kConnected && !view.link_message.empty()) {
    screen->Fill(0, y - 1, screen->width(), L' ', Style::kNormal);
    screen->Put(1, y - 1, Truncate(view.link_message, static_cast<size_t>(screen->width() - 2)),
                view.link == LinkState::kRefused ? Style::kBad : Style::kWarn);
  }
}

void DrawHelp(Screen* screen) {
  static const char* const kLines[] = {
      "w   switch window: 1m → 5m → 1h",
      "p   pause / resume the display",
      "r   reconnect now",
      "t   history: a past range (f filter, b breakdown)",
      "c   support chat (Enter sends, Esc closes)",
      "?   show / hide this help",
      "q   quit (also Ctrl-C)",
      "",
      "Tiles: value in the window, change against",
      "the previous window, last window as sparkline.",
  };
  DrawHelpBox(kLines, screen);
}

}  // namespace

void DrawKpiTile(const std::string& title, const std::string& value_text, double previous,
                 double value, bool higher_is_better, const std::vector<double>& series, int x,
                 int y, int width, int chart_rows, Screen* screen) {
  screen->Box(x, y, width, kTileHeight - 1 + chart_rows, title, Style::kDim, Style::kHeader);
  const int inner = width - 4;
  screen->Put(x + 2, y + 1, value_text, Style::kNormal, inner);
  const std::string change = FormatChange(previous, value);
  if (!change.empty() &&
      DisplayWidth(value_text) + DisplayWidth(change) + 1 <= static_cast<size_t>(inner)) {
    const bool rising = change.rfind("▲", 0) == 0;
    const bool falling = change.rfind("▼", 0) == 0;
    Style style = Style::kDim;
    if (rising || falling) style = (rising == higher_is_better) ? Style::kUp : Style::kDown;
    screen->PutRight(x + width - 2, y + 1, change, style);
  }
  const std::vector<std::string> chart = SparkChart(series, inner, chart_rows);
  for (int row = 0; row < chart_rows; ++row) {
    screen->Put(x + 2, y + 2 + row, chart[static_cast<size_t>(row)], Style::kSpark, inner);
  }
}

void DrawHelpBox(std::span<const char* const> lines, Screen* screen) {
  const int width = std::min(54, screen->width() - 2);
  const int height = static_cast<int>(lines.size()) + 2;
  const int x = (screen->width() - width) / 2;
  const int y = std::max((screen->height() - height) / 2, 1);
  for (int row = y; row < y + height; ++row) screen->Fill(x, row, width, L' ', Style::kNormal);
  screen->Box(x, y, width, height, "Help", Style::kHeader, Style::kHeader);
  for (size_t i = 0; i < lines.size(); ++i) {
    screen->Put(x + 2, y + 1 + static_cast<int>(i), lines[i], Style::kNormal, width - 4);
  }
}

bool DrawTooSmall(Screen* screen) {
  const int width = screen->width();
  const int height = screen->height();
  if (width >= kMinWidth && height >= kMinHeight) return false;
  screen->Put(0, 0,
              "Terminal too small: " + std::to_string(width) + "x" + std::to_string(height) +
                  ", need 40x12.");
  screen->Put(0, 1, "q quits.");
  return true;
}

analytics::Window NextWindow(analytics::Window window) {
  switch (window) {
    case analytics::WINDOW_1M:
      return analytics::WINDOW_5M;
    case analytics::WINDOW_5M:
      return analytics::WINDOW_1H;
    default:
      return analytics::WINDOW_1M;
  }
}

std::string WindowLabel(analytics::Window window) {
  switch (window) {
    case analytics::WINDOW_1M:
      return "1m";
    case analytics::WINDOW_5M:
      return "5m";
    case analytics::WINDOW_1H:
      return "1h";
    case analytics::WINDOW_TOTAL:
      return "total";
    default:
      return "?";
  }
}

int64_t WindowSeconds(analytics::Window window) {
  switch (window) {
    case analytics::WINDOW_1M:
      return 60;
    case analytics::WINDOW_5M:
      return 300;
    default:
      return 3'600;
  }
}

void RenderDashboard(const DashboardModel& model, const ViewState& view, Screen* screen) {
  if (DrawTooSmall(screen)) return;
  const int width = screen->width();
  const int height = screen->height();
  DrawTitle(view, screen);

  // Rows of tables, each table with a share of the width: all five side by side on wide
  // terminals; on narrower ones the top-k tables get the room their long keys need.
  using Row = std::vector<std::pair<size_t, int>>;  // (table, weight)
  std::vector<Row> layout;
  if (width >= 160) {
    layout = {{{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}}};
  } else if (width >= 120) {
    layout = {{{0, 1}, {1, 1}, {2, 1}}, {{3, 1}, {4, 1}}};
  } else {
    layout = {{{0, 1}, {1, 1}}, {{2, 6}, {3, 5}, {4, 5}}};
  }

  // KPI tiles: 8 in a row on wide terminals, 4 per row from 80 columns, else 2. Height the
  // tables do not need (all ten entries shown) makes the tiles' charts taller.
  const int per_row = width >= 160 ? 8 : width >= 80 ? 4 : 2;
  const int tile_width = width / per_row;
  const int tile_rows = (static_cast<int>(std::size(kKpis)) + per_row - 1) / per_row;
  const int spare =
      height - 3 - tile_rows * kTileHeight - static_cast<int>(layout.size()) * kFullTableRows;
  const int chart_rows = std::clamp(1 + spare / tile_rows, 1, kMaxChartRows);
  const int tile_height = kTileHeight - 1 + chart_rows;
  for (size_t i = 0; i < std::size(kKpis); ++i) {
    const int column = static_cast<int>(i) % per_row;
    const int row = static_cast<int>(i) / per_row;
    DrawTile(model, view, kKpis[i], column * tile_width, 1 + row * tile_height, tile_width,
             chart_rows, screen);
  }

  // Tables between the tiles and the two status lines.
  const int top = 1 + tile_rows * tile_height;
  const int bottom = height - 2;  // the line above the status line holds messages
  const analytics::Window window = view.window;
  struct Table {
    std::string title;
    std::vector<TopRow> rows;
  };
  std::vector<Table> tables = {
      {"Top pages", model.Top("top_pages", window)},
      {"Top referrers", model.Top("top_referrers", window)},
      {"Top campaigns", model.Top("top_campaigns", window)},
      {"Countries", BreakdownRows(model, "events_by_country", window)},
      {"Devices", BreakdownRows(model, "events_by_device", window)},
  };
  int y = top;
  for (size_t r = 0; r < layout.size(); ++r) {
    const int rows_for_this = (bottom - y) / static_cast<int>(layout.size() - r);
    int weights = 0;
    for (const auto& [table, weight] : layout[r]) weights += weight;
    int x = 0;
    for (const auto& [table, weight] : layout[r]) {
      const int table_width = width * weight / weights;
      DrawTable(tables[table].title, tables[table].rows, x + 1, y, table_width - 2, rows_for_this,
                screen);
      x += table_width;
    }
    y += rows_for_this;
  }
  DrawStatus(model, view, screen);
  if (view.help) DrawHelp(screen);
}

}  // namespace rta::dashboard
