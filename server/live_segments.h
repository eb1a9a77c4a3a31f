#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "server/aggregator/latest_value.h"
#include "server/aggregator/live_segment.h"
#include "server/service_state.h"
#include "server/snapshot_hub.h"

namespace rta::server {

// The live segments the server keeps for subscriptions with filters: one per distinct set of
// conditions (in any order), shared by every subscriber of it, at most `max_segments` at once,
// freed once nobody has watched it for `idle_ms` (steady clock). The aggregator counts each open
// one in its own windows (agg::Aggregator::OpenSegment); this class decides which are open and
// serializes each one's snapshot once per tick for its subscribers, as SnapshotHub does for the
// global one.
//
// Thread-safety: Watch() and the watches' release run on any thread (worker threads); the
// mutex guards the table only (never taken on the ingest path). BeforeTick() and AfterTick()
// run on the tick thread, which alone calls the aggregator.
class LiveSegments {
 public:
  struct Options {
    uint32_t max_segments = 16;  // <= agg::kMaxLiveSegments / 2
    int64_t idle_ms = 60'000;
  };

  class Segment;

  // One subscriber's hold on a segment; the segment counts as watched while it lives.
  class Watch {
   public:
    Watch(LiveSegments& owner, std::shared_ptr<Segment> segment);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    // The segment's newest snapshot: until the tick after the segment opened, an empty one
    // (sequence 0, epoch 0).
    std::shared_ptr<const PublishedSnapshot> Latest() const;

   private:
    LiveSegments& owner_;
    std::shared_ptr<Segment> segment_;
  };

  explicit LiveSegments(Options options);
  ~LiveSegments();

  // Any thread. A watch on the segment of `conditions` (validated: ParseDimensionFilters),
  // opened at the next tick if it is new. When max_segments are kept and all are watched,
  // nullptr with *error set (the message of a RESOURCE_EXHAUSTED status).
  std::unique_ptr<Watch> Start(std::vector<agg::SegmentCondition> conditions, std::string* error);

  // Tick thread, before the aggregator's tick: opens the new segments and closes those idle
  // for idle_ms (or given up to make room).
  void BeforeTick(agg::Aggregator& aggregator);
  // Tick thread, after the aggregator's tick: publishes every open segment's new snapshot.
  void AfterTick(const agg::Aggregator& aggregator, bool early);

  // Tick thread: the aggregator id of the open segment with this canonical key
  // (agg::SegmentKeyOf), or -1; and the keys of every open segment (cluster mode: what this
  // node asks the partition owners to count, cluster::SegmentRegistry).
  int IdOf(std::string_view key) const;
  std::vector<std::string> OpenKeys() const;
  // Tick thread: changes whenever a segment opens or closes (so OpenKeys() is asked only then).
  uint64_t open_version() const { return open_version_; }

  size_t size() const;       // segments kept (watched or idle)
  uint64_t refused() const;  // Start() calls refused so far
  uint64_t opened() const;   // segments opened so far

 private:
  void Release(Segment& segment);

  const Options options_;
  mutable std::mutex mutex_;
  // By canonical key (conditions sorted by dimension). Guarded by mutex_.
  std::unordered_map<std::string, std::shared_ptr<Segment>> segments_;
  uint64_t refused_ = 0;       // guarded by mutex_
  uint64_t opened_ = 0;        // guarded by mutex_
  // Tick thread only: every segment with an aggregator id (the table may have dropped it).
  std::vector<std::shared_ptr<Segment>> open_;
  uint64_t open_version_ = 0;  // tick thread
};

// The admission both subscription front ends share (SubscribeCall on gRPC, the gRPC-Web
// subscriptions of server/http): a slot of --max-subscribers (state.subscribers), then, when
// there are conditions, a watch on their live segment. OK with the slot held (the caller gives
// it back when the subscription ends) and *segment set when there were conditions; otherwise
// the RESOURCE_EXHAUSTED status saying which limit, with nothing held. Any thread.
grpc::Status AdmitSubscriber(ServiceState& state, std::vector<agg::SegmentCondition> conditions,
                             std::unique_ptr<LiveSegments::Watch>* segment);

}  // namespace rta::server
