#include "dashboard_client/history_view.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <sstream>

#include "dashboard_client/format.h"
#include "dashboard_client/range_mode.h"

namespace rta::dashboard {
namespace {

constexpr int kHistoryChartRows = 6;

// The tiles, in the live view's order where the KPI is the same (events_total stands for the
// live view's events/s, sessions for its active sessions).
constexpr Kpi kHistoryKpis[] = {
    {"Events", "events_total", FormatCount, true},
    {"Page views", "page_views", FormatCount, true},
    {"Unique visitors", "unique_visitors", FormatCount, true},
    {"Sessions", "sessions", FormatCount, true},
    {"Conversion rate", "conversion_rate", FormatPercent, true},
    {"Revenue", "revenue", FormatMoney, true},
    {"Bounce rate", "bounce_rate", FormatPercent, false},
    {"p95 page load", "page_load_ms_p95", FormatMs, false},
};

// The breakdown table's columns (metric, header, format). The server ranks the rows (by page
// views; by events for event_type).
struct TableColumn {
  const char* metric;
  const char* header;
  std::string (*format)(double);
};
constexpr TableColumn kBreakdownColumns[] = {
    {"page_views", "page views", FormatCount},   {"unique_visitors", "visitors", FormatCount},
    {"conversions", "conversions", FormatCount}, {"revenue", "revenue", FormatMoney},
    {"events_total", "events", FormatCount},
};

constexpr std::array<const char*, 7> kBreakdownOrder = {
    "page", "country", "device", "referrer", "utm_source", "utm_campaign", "event_type"};

int MetricColumn(const analytics::RangeResult& result, const char* metric) {
  for (int i = 0; i < result.metrics_size(); ++i) {
    if (result.metrics(i) == metric) return i;
  }
  return -1;
}

double Total(const analytics::RangeResult& result, int column) {
  return column >= 0 && column < result.totals_size() ? result.totals(column)
                                                      : std::numeric_limits<double>::quiet_NaN();
}

double PreviousTotal(const analytics::RangeResult& result, int column) {
  return column >= 0 && column < result.previous_totals_size()
             ? result.previous_totals(column)
             : std::numeric_limits<double>::quiet_NaN();
}

void DrawHistoryTile(const HistoryView& history, const Kpi& kpi, int x, int y, int width,
                     int chart_rows, Screen* screen) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (!history.has_result) {
    DrawKpiTile(kpi.title, history.loading ? "…" : "—", nan, nan, kpi.higher_is_better, {}, x, y,
                width, chart_rows, screen);
    return;
  }
  const analytics::RangeResult& result = history.result;
  const int column = MetricColumn(result, kpi.metric);
  double value = Total(result, column);
  // Visitors are an estimate: a whole number of them, as the live view shows.
  if (std::string_view(kpi.metric) == "unique_visitors") value = std::round(value);
  std::vector<double> series;
  if (column >= 0) {
    for (const auto& point : result.series()) {
      series.push_back(column < point.values_size() ? point.values(column) : nan);
    }
  }
  DrawKpiTile(kpi.title, kpi.format(value), PreviousTotal(result, column), value,
              kpi.higher_is_better, series, x, y, width, chart_rows, screen);
}

void DrawBreakdown(const HistoryView& history, int x, int y, int width, int height,
                   Screen* screen) {
  if (height < 2 || width < 30) return;
  if (history.breakdown.empty()) {
    screen->Put(x, y,
                "b: break down by page, country, device, referrer, utm_source, "
                "utm_campaign or event_type",
                Style::kDim, width);
    return;
  }
  const int column_width = 13;
  const int columns =
      std::clamp((width - 16) / column_width, 1, static_cast<int>(std::size(kBreakdownColumns)));
  const int key_width = width - columns * column_width;
  screen->Put(x, y, Truncate("by " + history.breakdown, static_cast<size_t>(key_width - 1)),
              Style::kHeader);
  for (int c = 0; c < columns; ++c) {
    screen->PutRight(x + key_width + (c + 1) * column_width, y, kBreakdownColumns[c].header,
                     Style::kDim);
  }
  if (!history.has_result) return;
  const analytics::RangeResult& result = history.result;
  if (result.breakdown_size() == 0) {
    screen->Put(x, y + 1, "(no data in this range)", Style::kDim, width);
    return;
  }
  for (int i = 0; i < height - 1 && i < result.breakdown_size(); ++i) {
    const analytics::BreakdownRow& row = result.breakdown(i);
    const std::string value = row.value() == "__other__" ? "(other)" : row.value();
    screen->Put(x, y + 1 + i, Truncate(value, static_cast<size_t>(key_width - 1)));
    for (int c = 0; c < columns; ++c) {
      const int index = MetricColumn(result, kBreakdownColumns[c].metric);
      const double cell = index >= 0 && index < row.values_size()
                              ? row.values(index)
                              : std::numeric_limits<double>::quiet_NaN();
      screen->PutRight(x + key_width + (c + 1) * column_width, y + 1 + i,
                       kBreakdownColumns[c].format(cell));
    }
  }
}

void DrawHistoryHelp(Screen* screen) {
  static const char* const kLines[] = {
      "t   range: live → 1h → 24h → 7d → 30d → live",
      "f   filter, e.g. country=DE utm_campaign=spring",
      "    (Enter applies, Esc cancels, empty clears)",
      "b   breakdown table: page → country → … → none",
      "r   ask the server again now",
      "?   show / hide this help",
      "q   quit (also Ctrl-C)",
      "",
      "Tiles: the range's total, change against the",
      "period just before it, the range as a chart.",
      "— : a KPI the segment does not keep.",
  };
  DrawHelpBox(kLines, screen);
}

int TilesPerRow(int width) { return width >= 160 ? 8 : width >= 80 ? 4 : 2; }

}  // namespace

std::string NextRange(const std::string& range) {
  static const char* const kOrder[] = {"", "1h", "24h", "7d", "30d"};
  for (size_t i = 0; i < std::size(kOrder); ++i) {
    if (range == kOrder[i]) return kOrder[(i + 1) % std::size(kOrder)];
  }
  return "";
}

bool FilterNames(const std::string& filter_text, const std::string& dimension) {
  if (dimension.empty()) return false;
  std::stringstream words(filter_text);
  for (std::string word; words >> word;) {
    if (word.rfind(dimension + "=", 0) == 0) return true;
  }
  return false;
}

std::string NextBreakdown(const std::string& breakdown, const std::string& filter_text) {
  size_t next = 0;  // from none: the first
  for (size_t i = 0; i < kBreakdownOrder.size(); ++i) {
    if (breakdown == kBreakdownOrder[i]) next = i + 1;
  }
  for (; next < kBreakdownOrder.size(); ++next) {
    if (!FilterNames(filter_text, kBreakdownOrder[next])) return kBreakdownOrder[next];
  }
  return "";
}

std::string RangeTitle(const std::string& range) {
  if (range == "1h") return "last hour";
  if (range == "24h") return "last 24 hours";
  if (range == "7d") return "last 7 days";
  if (range == "30d") return "last 30 days";
  return "live";
}

bool BuildHistoryQuery(const HistoryView& view, int breakdown_rows, analytics::RangeQuery* query,
                       std::string* error) {
  RangeFlags flags;
  flags.range = view.range;
  if (!view.filter_text.empty()) flags.filters = {view.filter_text};
  flags.breakdown = view.breakdown;
  if (!view.breakdown.empty()) flags.breakdown_limit = std::clamp(breakdown_rows - 1, 1, 1000);
  flags.compare = true;
  for (const Kpi& kpi : kHistoryKpis) flags.metrics.emplace_back(kpi.metric);
  flags.metrics.emplace_back("conversions");
  if (!BuildRangeQuery(flags, query, error)) {
    if (error->rfind("--", 0) == 0) error->erase(0, 2);  // "filter: ...", not a flag here
    return false;
  }
  return true;
}

int HistoryBreakdownRows(int width, int height) {
  const int per_row = TilesPerRow(width);
  const int tile_rows = (static_cast<int>(std::size(kHistoryKpis)) + per_row - 1) / per_row;
  // Title, tiles of one chart line, the notes line, the prompt line, the status line.
  return std::max(height - 1 - tile_rows * kKpiTileHeight - 3 - 1, 2);
}

void RenderHistory(const HistoryView& history, const ViewState& view, Screen* screen) {
  if (DrawTooSmall(screen)) return;
  const int width = screen->width();
  const int height = screen->height();
  // The title: what is shown, and the keys.
  screen->Fill(0, 0, width, L' ', Style::kTitle);
  std::string title = "History · " + RangeTitle(history.range);
  if (!history.filter_text.empty()) title += " · " + history.filter_text;
  screen->Put(1, 0, title, Style::kTitle, width - 2);
  for (const std::string keys :
       {"t range  f filter  b breakdown  r refresh  ? help  q quit ", "? help  q quit "}) {
    if (static_cast<int>(DisplayWidth(keys) + DisplayWidth(title)) + 4 <= width) {
      screen->PutRight(width, 0, keys, Style::kTitle);
      break;
    }
  }

  // Tiles, then the breakdown table; the table gets the rows it wants (up to 11), the tiles'
  // charts what is left.
  const int per_row = TilesPerRow(width);
  const int tile_width = width / per_row;
  const int tile_rows = (static_cast<int>(std::size(kHistoryKpis)) + per_row - 1) / per_row;
  const int wanted_table =
      history.breakdown.empty()
          ? 1
          : std::min(history.has_result ? history.result.breakdown_size() + 1 : 2, 12);
  const int spare = height - 4 - tile_rows * kKpiTileHeight - wanted_table - 1;
  const int chart_rows = std::clamp(1 + spare / tile_rows, 1, kHistoryChartRows);
  const int tile_height = kKpiTileHeight - 1 + chart_rows;
  for (size_t i = 0; i < std::size(kHistoryKpis); ++i) {
    const int column = static_cast<int>(i) % per_row;
    const int row = static_cast<int>(i) / per_row;
    DrawHistoryTile(history, kHistoryKpis[i], column * tile_width, 1 + row * tile_height,
                    tile_width, chart_rows, screen);
  }
  const int table_top = 1 + tile_rows * tile_height;
  const int notes_row = height - 3;
  DrawBreakdown(history, 1, table_top, width - 2, notes_row - table_top, screen);

  // The error, or the notes (what is an estimate, what a segment does not keep).
  if (!history.error.empty()) {
    screen->Put(1, notes_row, Truncate(history.error, static_cast<size_t>(width - 2)), Style::kBad);
  } else if (history.has_result && history.result.notes_size() > 0) {
    std::string notes;
    for (const std::string& note : history.result.notes()) {
      if (!notes.empty()) notes += " · ";
      notes += note;
    }
    screen->Put(1, notes_row, Truncate(notes, static_cast<size_t>(width - 2)), Style::kDim);
  }

  // The filter prompt, while it is open.
  const int prompt_row = height - 2;
  if (history.prompt_open) {
    const std::string head = "filter (dimension=value ..., Enter applies, Esc cancels): ";
    std::wstring typed = DecodeUtf8(history.prompt_input);
    const int room = std::max(width - 3 - static_cast<int>(DisplayWidth(head)), 1);
    if (static_cast<int>(typed.size()) > room) {
      typed = typed.substr(typed.size() - static_cast<size_t>(room));
    }
    screen->Put(1, prompt_row, head, Style::kHeader);
    screen->Put(1 + static_cast<int>(DisplayWidth(head)), prompt_row, EncodeUtf8(typed) + "█");
  }

  // The status line.
  const int y = height - 1;
  std::string state = history.loading          ? "● asking the server"
                      : !history.error.empty() ? "● refused"
                      : history.has_result     ? "● answered"
                                               : "● waiting";
  const Style state_style = history.loading          ? Style::kWarn
                            : !history.error.empty() ? Style::kBad
                            : history.has_result     ? Style::kGood
                                                     : Style::kWarn;
  std::string step;
  if (history.has_result) {
    const int64_t seconds = history.result.step_seconds();
    step = seconds == 60 ? "per minute" : seconds == 3600 ? "per hour" : "per day";
  }
  int x = 1;
  for (const auto& [text, style] : std::initializer_list<std::pair<std::string, Style>>{
           {view.server, Style::kNormal},
           {state, state_style},
           {RangeTitle(history.range), Style::kNormal},
           {step, Style::kDim}}) {
    if (text.empty()) continue;
    if (x > 1) {
      screen->Put(x, y, " │ ", Style::kDim);
      x += 3;
    }
    screen->Put(x, y, text, style);
    x += static_cast<int>(DisplayWidth(text));
  }
  if (view.help) DrawHistoryHelp(screen);
}

HistoryQueries::HistoryQueries(std::shared_ptr<grpc::Channel> channel,
                               client::ChannelOptions options, std::chrono::milliseconds timeout)
    : stub_(analytics::AnalyticsService::NewStub(channel)),
      options_(std::move(options)),
      timeout_(timeout) {}

HistoryQueries::~HistoryQueries() {
  for (auto& [id, call] : calls_) call->context.TryCancel();
  queue_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue_.Next(&tag, &ok)) calls_.erase(reinterpret_cast<uintptr_t>(tag));
}

void HistoryQueries::Start(const analytics::RangeQuery& query) {
  if (current_ != 0) {
    auto found = calls_.find(current_);
    if (found != calls_.end()) found->second->context.TryCancel();
  }
  const uint64_t id = next_id_++;
  auto call = std::make_unique<Call>();
  client::AddCredentials(options_, &call->context);
  call->context.set_deadline(std::chrono::system_clock::now() + timeout_);
  call->reader = stub_->AsyncQueryMetrics(&call->context, query, &queue_);
  call->reader->Finish(&call->result, &call->status, reinterpret_cast<void*>(id));
  calls_.emplace(id, std::move(call));
  current_ = id;
}

bool HistoryQueries::Poll(analytics::RangeResult* result, grpc::Status* status) {
  bool answered = false;
  void* tag = nullptr;
  bool ok = false;
  while (queue_.AsyncNext(&tag, &ok, std::chrono::system_clock::now()) ==
         grpc::CompletionQueue::GOT_EVENT) {
    const auto id = reinterpret_cast<uintptr_t>(tag);
    auto found = calls_.find(id);
    if (found == calls_.end()) continue;
    if (id == current_) {
      *status = found->second->status;
      if (status->ok()) *result = std::move(found->second->result);
      current_ = 0;
      answered = true;
    }
    calls_.erase(found);
  }
  return answered;
}

}  // namespace rta::dashboard
