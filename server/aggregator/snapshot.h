#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analytics.pb.h"

namespace rta::agg {

// One entry of a top-k list; the true count lies in [count - error, count].
struct TopItem {
  std::string key;
  uint64_t count = 0;
  uint64_t error = 0;
  double share = 0.0;  // count / total of the ranked kind in the window

  bool operator==(const TopItem&) const = default;
};

// One series: a metric in one window, optionally for one dimension value.
struct MetricPoint {
  std::string name;                                          // e.g. "page_views"
  analytics::Window window = analytics::WINDOW_UNSPECIFIED;  // never UNSPECIFIED in a snapshot
  std::string label_key;                                     // "" or the dimension, e.g. "country"
  std::string label_value;                                   // e.g. "DE" or "__other__"
  double value = 0.0;
  std::vector<TopItem> top;  // only for top_* metrics, highest count first
  // Sequence of the tick at which value/top last changed (or the series first appeared).
  uint64_t changed_sequence = 0;
};

// An immutable picture of every metric, built by Aggregator::Tick() and shared read-only by any
// number of readers (publishers, GetMetrics). Never modified after publication.
struct Snapshot {
  uint64_t epoch = 0;     // random per Aggregator instance (per server start), never 0
  uint64_t sequence = 0;  // 1 for the first tick, +1 per tick
  int64_t time_ms = 0;    // the clock at the tick
  // Every series, in a stable order: series keep their relative order from tick to tick and new
  // series are appended at the end of their metric's group. Dimension series never disappear
  // while the server runs (a value that stops occurring goes to 0).
  std::vector<MetricPoint> points;
};

}  // namespace rta::agg
