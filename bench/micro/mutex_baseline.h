#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "analytics.pb.h"
#include "server/aggregator/aggregator.h"
#include "server/aggregator/clock.h"
#include "server/aggregator/event_validation.h"
#include "server/aggregator/hyperloglog.h"
#include "server/aggregator/quantile_sketch.h"

namespace rta::bench {

// The design the aggregator replaces, for comparison only: one std::mutex around standard
// containers. It validates outside the lock (with the real validation code) and then, under the
// lock, de-duplicates with an unordered_map of id hashes, counts into a per-second bucket (the
// same HyperLogLog and quantile sketch classes, unordered_maps of strings for pages, referrers,
// campaigns, countries, devices) and updates an unordered_map of sessions. It has no windows or
// snapshots: it is cheaper than the real thing in everything but the lock.
class MutexAggregator {
 public:
  explicit MutexAggregator(const agg::Clock& clock);
  ~MutexAggregator();

  agg::IngestOutcome Ingest(const analytics::EventData& event);

 private:
  struct Bucket;
  struct Session {
    int64_t first_ms = 0;
    int64_t last_ms = 0;
    uint32_t page_views = 0;
  };

  const agg::Clock& clock_;
  std::mutex mutex_;
  std::unordered_map<uint64_t, int64_t> seen_;  // id hash -> second accepted
  std::unordered_map<int64_t, std::unique_ptr<Bucket>> seconds_;
  std::unordered_map<std::string, Session> sessions_;
};

}  // namespace rta::bench
