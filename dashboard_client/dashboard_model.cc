#include "dashboard_client/dashboard_model.h"

#include <algorithm>

namespace rta::dashboard {
namespace {

// Orderings of (second, value) points by their second, for the binary searches.
bool BySecond(const std::pair<int64_t, double>& point, int64_t second) {
  return point.first < second;
}
bool SecondBefore(int64_t second, const std::pair<int64_t, double>& point) {
  return second < point.first;
}

}  // namespace

std::string DashboardModel::Key(const std::string& metric, analytics::Window window) {
  return metric + '/' + std::to_string(static_cast<int>(window));
}

const DashboardModel::SeriesState* DashboardModel::Find(const std::string& metric,
                                                        analytics::Window window) const {
  const auto it = series_.find(Key(metric, window));
  return it == series_.end() ? nullptr : &it->second;
}

void DashboardModel::Record(SeriesState& series, int64_t second, double value) {
  auto& history = series.history;
  if (!history.empty() && history.back().first == second) {
    history.back().second = value;  // the latest value of a second wins
  } else if (history.empty() || history.back().first < second) {
    history.emplace_back(second, value);
  } else {  // an older point (history arriving after live values): keep the order
    const auto at = std::lower_bound(history.begin(), history.end(), second, BySecond);
    if (at != history.end() && at->first == second) return;
    history.insert(at, {second, value});
  }
  while (history.size() > 1 && history.front().first < history.back().first - kHistorySeconds) {
    history.pop_front();
  }
}

void DashboardModel::Apply(const analytics::MetricUpdate& update) {
  ++updates_applied_;
  if (update.epoch() != 0) epoch_ = update.epoch();
  skipped_total_ += update.skipped();
  if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) {
    snapshot_complete_ = true;
    return;
  }
  const int64_t time_ms =
      update.timestamp_ms() != 0 ? update.timestamp_ms() : update.timestamp() * 1000;
  SeriesState& series = series_[Key(update.metric_type(), update.window())];
  if (update.kind() == analytics::UPDATE_KIND_HISTORY) {
    Record(series, time_ms / 1000, update.value());
    return;
  }
  latest_ms_ = std::max(latest_ms_, time_ms);
  sequence_ = std::max(sequence_, update.sequence());
  if (!update.labels().empty()) {
    // One series per label value, e.g. events_by_country{country=DE}.
    series.breakdown[update.labels().begin()->second] = update.value();
    return;
  }
  series.value = update.value();
  if (update.top_size() > 0 || update.metric_type().rfind("top_", 0) == 0) {
    series.top.clear();
    for (const analytics::TopEntry& entry : update.top()) {
      series.top.push_back({entry.key(), static_cast<double>(entry.count()), entry.share()});
    }
    return;
  }
  Record(series, time_ms / 1000, update.value());
}

void DashboardModel::Reset() { *this = DashboardModel(); }

double DashboardModel::Value(const std::string& metric, analytics::Window window) const {
  const SeriesState* series = Find(metric, window);
  return series == nullptr ? NAN : series->value;
}

double DashboardModel::ValueAt(const std::string& metric, analytics::Window window,
                               int64_t second) const {
  const SeriesState* series = Find(metric, window);
  if (series == nullptr || series->history.empty()) return NAN;
  const auto& history = series->history;
  const auto after = std::upper_bound(history.begin(), history.end(), second, SecondBefore);
  return after == history.begin() ? NAN : std::prev(after)->second;
}

std::vector<double> DashboardModel::Series(const std::string& metric, analytics::Window window,
                                           int64_t from, int64_t to) const {
  std::vector<double> values;
  const DashboardModel::SeriesState* series = Find(metric, window);
  if (to < from) return values;
  values.reserve(static_cast<size_t>(to - from + 1));
  if (series == nullptr || series->history.empty()) {
    values.assign(static_cast<size_t>(to - from + 1), NAN);
    return values;
  }
  // One pass: walk the history alongside the seconds.
  const auto& history = series->history;
  auto next = std::upper_bound(history.begin(), history.end(), from, SecondBefore);
  double current = next == history.begin() ? NAN : std::prev(next)->second;
  for (int64_t second = from; second <= to; ++second) {
    while (next != history.end() && next->first <= second) current = (next++)->second;
    values.push_back(current);
  }
  return values;
}

const std::vector<TopRow>& DashboardModel::Top(const std::string& metric,
                                               analytics::Window window) const {
  static const std::vector<TopRow> kNone;
  const DashboardModel::SeriesState* series = Find(metric, window);
  return series == nullptr ? kNone : series->top;
}

std::vector<std::pair<std::string, double>> DashboardModel::Breakdown(
    const std::string& metric, analytics::Window window) const {
  std::vector<std::pair<std::string, double>> rows;
  if (const DashboardModel::SeriesState* series = Find(metric, window)) {
    for (const auto& [label, value] : series->breakdown) {
      if (value > 0) rows.emplace_back(label, value);
    }
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return rows;
}

}  // namespace rta::dashboard
