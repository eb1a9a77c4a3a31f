#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "analytics.pb.h"

namespace rta::dashboard {

struct TopRow {
  std::string key;
  double count = 0;
  double share = 0;  // of the ranked kind's total in the window
};

// What the dashboard knows about the server's metrics: the latest value of every series, the
// per-second history of scalar series (from the HISTORY sent on join, then live updates), the
// top-k lists and the dimension breakdowns. Pure data: no I/O, no clock (times are the server's,
// from the updates), not thread-safe (the UI thread owns it).
class DashboardModel {
 public:
  static constexpr int64_t kHistorySeconds = 3'600 + 60;

  void Apply(const analytics::MetricUpdate& update);
  // Forgets everything: a full snapshot follows (a new stream that could not resume).
  void Reset();

  // NaN when the series is unknown.
  double Value(const std::string& metric, analytics::Window window) const;
  // The value the series had at `second` (Unix seconds): its last point at or before it; NaN
  // when its history does not reach back that far.
  double ValueAt(const std::string& metric, analytics::Window window, int64_t second) const;
  // One value per second from `from` to `to` inclusive (NaN before the history starts).
  std::vector<double> Series(const std::string& metric, analytics::Window window, int64_t from,
                             int64_t to) const;
  // Empty when unknown.
  const std::vector<TopRow>& Top(const std::string& metric, analytics::Window window) const;
  // Label value -> value, non-zero ones, largest first.
  std::vector<std::pair<std::string, double>> Breakdown(const std::string& metric,
                                                        analytics::Window window) const;

  // The server's time of the newest update (Unix ms), 0 before any.
  int64_t latest_ms() const { return latest_ms_; }
  uint64_t epoch() const { return epoch_; }
  uint64_t sequence() const { return sequence_; }
  uint64_t skipped_total() const { return skipped_total_; }
  bool snapshot_complete() const { return snapshot_complete_; }
  uint64_t updates_applied() const { return updates_applied_; }

 private:
  struct SeriesState {
    double value = NAN;
    std::deque<std::pair<int64_t, double>> history;  // (Unix second, value), oldest first
    std::vector<TopRow> top;
    std::map<std::string, double> breakdown;
  };
  static std::string Key(const std::string& metric, analytics::Window window);
  const SeriesState* Find(const std::string& metric, analytics::Window window) const;
  static void Record(SeriesState& series, int64_t second, double value);

  std::map<std::string, SeriesState> series_;
  int64_t latest_ms_ = 0;
  uint64_t epoch_ = 0;
  uint64_t sequence_ = 0;
  uint64_t skipped_total_ = 0;
  bool snapshot_complete_ = false;
  uint64_t updates_applied_ = 0;
};

}  // namespace rta::dashboard
