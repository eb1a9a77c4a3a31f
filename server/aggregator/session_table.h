#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "server/aggregator/flat_map.h"
#include "server/aggregator/shard_delta.h"
#include "server/aggregator/state_codec.h"

namespace rta::agg::detail {

// Sums over a set of sessions.
struct SessionTotals {
  uint64_t sessions = 0;
  uint64_t bounced = 0;     // sessions with exactly one page_view over their life
  int64_t duration_ms = 0;  // sum of (last - first event time)
};

// Every live session (session_id hash -> first/last event time, page views, conversions), fed
// from the shard deltas on the tick thread, bounded by max_sessions.
//
// Window queries are O(ring) rather than O(sessions): each session contributes (1, bounced?,
// duration) to the per-second aggregate of its LAST event's second, and moves its contribution
// when its last event time changes. Windows end at "now" (plus accepted future events), so "the
// sessions with an event in the window" are exactly those whose last event is at or after the
// window's start: Window(start) sums the aggregates of the seconds >= start. The ring covers
// more than the longest window; sessions whose last event is older are dropped by Expire().
//
// TOTAL counts every session tracked since start (a session that expires and comes back later
// counts twice). Not thread-safe: the tick thread owns it.
class SessionTable {
 public:
  SessionTable(uint32_t max_sessions, int64_t ring_seconds);

  // Folds one delta's view of a session in. Returns false when the session is new and the table
  // already holds max_sessions (the caller counts it as dropped).
  bool Merge(uint64_t hash, const SessionDelta& delta);

  // Forgets the sessions whose last event is before `oldest_second`.
  void Expire(int64_t oldest_second);

  // Sessions whose last event's second is >= start_second.
  SessionTotals Window(int64_t start_second) const;
  const SessionTotals& totals() const { return totals_; }
  size_t size() const { return table_.size(); }
  size_t max_sessions() const { return max_sessions_; }

  // Checkpoint format (state_codec.h): sessions, the per-second ring and the totals. Load()
  // replaces the contents of an empty table with the same ring size.
  void Save(StateWriter& out) const;
  bool Load(StateReader& in);

 private:
  struct Record {
    int64_t first_ms = 0;
    int64_t last_ms = 0;
    uint32_t page_views = 0;
    uint32_t conversions = 0;
  };
  struct SecondAggregate {
    int64_t second = std::numeric_limits<int64_t>::min();
    SessionTotals totals;
  };

  void Contribute(const Record& record, int sign);

  size_t max_sessions_;
  FlatMap<Record> table_;
  std::vector<SecondAggregate> ring_;
  SessionTotals totals_;
};

}  // namespace rta::agg::detail
