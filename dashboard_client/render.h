#pragma once

#include <string>

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

}  // namespace rta::dashboard
