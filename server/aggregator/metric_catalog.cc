#include "server/aggregator/metric_catalog.h"

namespace rta::agg {

static_assert(static_cast<size_t>(Metric::kCartAbandonments) + 1 == kMetricCount,
              "kMetricNames must list every Metric");
static_assert(MetricName(Metric::kTopPages) == "top_pages");
static_assert(MetricName(Metric::kEventsByCountry) == "events_by_country");
static_assert(MetricName(Metric::kCartAbandonments) == "cart_abandonments");

}  // namespace rta::agg
