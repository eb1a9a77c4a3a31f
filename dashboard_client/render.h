#pragma once

#include <span>
#include <string>
#include <vector>

#include "analytics.pb.h"
#include "dashboard_client/dashboard_model.h"
#include "dashboard_client/screen.h"

namespace rta::dashboard {

enum class LinkState {
  kConnecting,    // first attempt in progress
  kConnected,     // the stream is open
  kReconnecting,  // lost or unreachable; the next attempt is scheduled
  kRefused,       // the server refused us (token, arguments); waits for a manual reconnect
};

// Everything the screen shows that is not metric data.
struct ViewState {
  std::string server;
  std::string dashboard_id;
  std::string segment;  // the live segment watched (--filter), "country=DE"; "" for all traffic
  analytics::Window window = analytics::WINDOW_1M;
  bool paused = false;
  bool help = false;
  LinkState link = LinkState::kConnecting;
  double reconnect_in_seconds = 0;   // kReconnecting
  std::string link_message;          // why we are not connected, in words
  double seconds_since_update = -1;  // -1: nothing received yet
};

// The next window for the `w` key: 1m -> 5m -> 1h -> 1m.
analytics::Window NextWindow(analytics::Window window);
// "1m", "5m", "1h", "total".
std::string WindowLabel(analytics::Window window);
int64_t WindowSeconds(analytics::Window window);

// Draws the whole dashboard into the screen (any size; below 40x12 a "too small" notice):
// the title bar, eight KPI tiles (value, change against the previous window, sparkline), the
// top pages / referrers / campaigns tables, traffic by country and device, and the status line.
void RenderDashboard(const DashboardModel& model, const ViewState& view, Screen* screen);

// Pieces the live view and the history view (history_view.h) share.
// What a KPI tile shows: its title, the metric it reads, how its value is written (NaN, a KPI
// that is not kept, as "—") and which way is better. The live view and the history view each
// have their list.
struct Kpi {
  const char* title;
  const char* metric;
  std::string (*format)(double);
  bool higher_is_better;
};

// A KPI tile's height without its chart: borders and the value line.
inline constexpr int kKpiTileHeight = 4;
// One KPI tile of kKpiTileHeight - 1 + chart_rows lines: a box titled `title`, the value, its
// change against `previous` (green when it goes the better way), the series as a chart.
void DrawKpiTile(const std::string& title, const std::string& value_text, double previous,
                 double value, bool higher_is_better, const std::vector<double>& series, int x,
                 int y, int width, int chart_rows, Screen* screen);
// The help overlay: a box in the middle of the screen with these lines.
void DrawHelpBox(std::span<const char* const> lines, Screen* screen);
// Below 40x12: draws the "too small" notice and returns true.
bool DrawTooSmall(Screen* screen);

}  // namespace rta::dashboard
