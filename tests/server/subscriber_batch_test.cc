// Unit tests of what a subscriber is sent (SubscriberBatch) and of the shared per-second history
// it walks (MetricHistory), without a server: snapshots are built by hand and published into a
// SnapshotHub, and the messages are parsed back as a client would.
#include "server/subscriber_batch.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analytics.pb.h"
#include "server/snapshot_hub.h"

using analytics::MetricUpdate;
using rta::server::MetricFilter;
using rta::server::PublishedSnapshot;
using rta::server::SnapshotHub;
using rta::server::SubscriberBatch;

namespace {

constexpr uint64_t kEpoch = 77;
constexpr int64_t kStartMs = 1'700'000'000'000;

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A hand-made aggregator: a fixed set of series whose values the test changes between ticks.
class Feed {
 public:
  Feed() {
    for (const char* name : {"events_total", "page_views", "revenue"}) {
      for (auto window : {analytics::WINDOW_1M, analytics::WINDOW_TOTAL}) {
        rta::agg::MetricPoint point;
        point.name = name;
        point.window = window;
        points_.push_back(point);
      }
    }
    // Never part of the history: a dimension series and a top-k list.
    rta::agg::MetricPoint country;
    country.name = "events_by_country";
    country.window = analytics::WINDOW_TOTAL;
    country.label_key = "country";
    country.label_value = "DE";
    points_.push_back(country);
    rta::agg::MetricPoint top;
    top.name = "top_pages";
    top.window = analytics::WINDOW_TOTAL;
    top.top.push_back({"/", 1, 0, 1.0});
    points_.push_back(top);
  }
  size_t series() const { return points_.size(); }
  void Add(rta::agg::MetricPoint point) { points_.push_back(std::move(point)); }
  // Sets a value (index in the order above) for the next tick; it counts as changed then.
  void Set(size_t index, double value) {
    points_[index].value = value;
    points_[index].changed_sequence = sequence_ + 1;
  }
  // Publishes the next tick at the next second.
  std::shared_ptr<const PublishedSnapshot> Tick(bool early = false) {
    auto snapshot = std::make_shared<rta::agg::Snapshot>();
    snapshot->epoch = kEpoch;
    snapshot->sequence = ++sequence_;
    snapshot->time_ms = kStartMs + static_cast<int64_t>(sequence_) * 1000;
    for (auto& point : points_) {
      if (point.changed_sequence == 0) point.changed_sequence = sequence_;
    }
    snapshot->points = points_;
    return hub.Publish(std::move(snapshot), early);
  }
  uint64_t sequence() const { return sequence_; }

  SnapshotHub hub;

 private:
  std::vector<rta::agg::MetricPoint> points_;
  uint64_t sequence_ = 0;
};

// No windows: every window (as with --default-window all).
MetricFilter Filter(std::vector<std::string> names, std::vector<analytics::Window> windows = {}) {
  google::protobuf::RepeatedPtrField<std::string> n(names.begin(), names.end());
  google::protobuf::RepeatedField<int> w;
  for (auto window : windows) w.Add(window);
  MetricFilter filter;
  REQUIRE(MetricFilter::Build(n, w, rta::server::kAllWindows, &filter).ok());
  return filter;
}

struct Drained {
  std::vector<MetricUpdate> updates;
  std::vector<size_t> message_sizes;
  size_t updates_counted = 0;  // as NextMessage() reported them
};

// Takes every message of the current batch, as the call would write them, and parses them back.
Drained Drain(SubscriberBatch& batch, bool batched) {
  Drained out;
  for (int guard = 0; batch.HasMessage() && guard < 1'000'000; ++guard) {
    size_t updates = 0;
    const std::string bytes = Bytes(batch.NextMessage(&updates));
    out.updates_counted += updates;
    out.message_sizes.push_back(bytes.size());
    if (batched) {
      analytics::MetricUpdateBatch message;
      REQUIRE(message.ParseFromString(bytes));
      for (const auto& u : message.updates()) out.updates.push_back(u);
    } else {
      REQUIRE(out.updates.emplace_back().ParseFromString(bytes));
    }
  }
  return out;
}

SubscriberBatch::Settings Settings(MetricFilter filter, bool batched = false,
                                   int64_t interval_ms = 0, bool push = false) {
  return {std::move(filter), interval_ms, push, batched};
}

// The HISTORY update of one series and second, as the server sent it before the shared chunks.
MetricUpdate HistoryUpdate(const std::string& name, analytics::Window window, int64_t second,
                           double value) {
  MetricUpdate u;
  u.set_metric_type(name);
  u.set_window(window);
  u.set_value(value);
  u.set_timestamp(second);
  u.set_timestamp_ms(second * 1000);
  u.set_epoch(kEpoch);
  u.set_kind(analytics::UPDATE_KIND_HISTORY);
  return u;
}

}  // namespace

TEST_CASE("initial batch: snapshot, history series by series oldest first, end marker",
          "[server][subscriber_batch]") {
  Feed feed;
  for (int t = 1; t <= 5; ++t) {
    feed.Set(2, t * 10);  // page_views 1m
    feed.Set(3, t);       // page_views total
    feed.Tick();
  }
  const bool batched = GENERATE(false, true);
  analytics::SubscriptionRequest request;
  request.set_history_seconds(3);
  SubscriberBatch batch;
  batch.StartInitial(Settings(Filter({"page_views"}), batched), request, feed.hub.Latest(),
                     feed.hub.history(), 0);
  const Drained d = Drain(batch, batched);
  const int64_t last = (kStartMs + 5000) / 1000;
  std::vector<MetricUpdate> expected;
  for (size_t i : {2, 3}) {
    MetricUpdate u;
    rta::server::FillMetricUpdate(*feed.hub.Latest()->snapshot,
                                  feed.hub.Latest()->snapshot->points[i],
                                  analytics::UPDATE_KIND_SNAPSHOT, &u);
    expected.push_back(u);
  }
  for (int64_t s = last - 2; s <= last; ++s) {
    expected.push_back(HistoryUpdate("page_views", analytics::WINDOW_1M, s,
                                     static_cast<double>(s - last + 5) * 10));
  }
  for (int64_t s = last - 2; s <= last; ++s) {
    expected.push_back(
        HistoryUpdate("page_views", analytics::WINDOW_TOTAL, s, static_cast<double>(s - last + 5)));
  }
  MetricUpdate end;
  end.set_kind(analytics::UPDATE_KIND_SNAPSHOT_END);
  end.set_sequence(5);
  end.set_epoch(kEpoch);
  end.set_timestamp(last);
  end.set_timestamp_ms(last * 1000);
  expected.push_back(end);
  REQUIRE(d.updates.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("update " << i << ": " << d.updates[i].ShortDebugString());
    CHECK(d.updates[i].SerializeAsString() == expected[i].SerializeAsString());
  }
  CHECK(d.updates_counted == expected.size());
  CHECK(d.message_sizes.size() == (batched ? 1 : expected.size()));
  batch.Complete();
  CHECK(batch.sent_sequence() == 5);
  CHECK_FALSE(batch.HasMessage());
}

TEST_CASE("history holds only scalar series, and only the ones the filter matches",
          "[server][subscriber_batch]") {
  Feed feed;
  for (int t = 0; t < 4; ++t) feed.Tick();
  analytics::SubscriptionRequest request;
  request.set_history_seconds(3600);
  SubscriberBatch batch;
  batch.StartInitial(Settings(Filter({}, {analytics::WINDOW_TOTAL})), request, feed.hub.Latest(),
                     feed.hub.history(), 0);
  size_t history = 0, snapshot = 0;
  for (const auto& u : Drain(batch, false).updates) {
    if (u.kind() != analytics::UPDATE_KIND_SNAPSHOT_END)
      CHECK(u.window() == analytics::WINDOW_TOTAL);
    if (u.kind() == analytics::UPDATE_KIND_HISTORY) {
      ++history;
      CHECK(u.labels().empty());
      CHECK(u.metric_type().rfind("top_", 0) == std::string::npos);
    }
    if (u.kind() == analytics::UPDATE_KIND_SNAPSHOT) ++snapshot;
  }
  CHECK(snapshot == 5);     // 3 scalar totals, the country series, top_pages
  CHECK(history == 3 * 4);  // 3 scalar totals x 4 seconds
}

TEST_CASE("a joiner's history is the one at its join, though the history moves on",
          "[server][subscriber_batch]") {
  Feed feed;
  for (int t = 1; t <= 10; ++t) {
    feed.Set(1, t);  // events_total total
    feed.Tick();
  }
  analytics::SubscriptionRequest request;
  request.set_history_seconds(3600);
  SubscriberBatch batch;
  batch.StartInitial(Settings(Filter({"events_total"}, {analytics::WINDOW_TOTAL})), request,
                     feed.hub.Latest(), feed.hub.history(), 0);
  // Over an hour more: the history drops every second this joiner still has to send.
  for (int t = 0; t < 3700; ++t) feed.Tick();
  const auto fresh = feed.hub.history().View(Filter({"events_total"}), 3600);
  REQUIRE_FALSE(fresh.chunks.empty());
  CHECK(fresh.chunks.front()->second > (kStartMs + 10'000) / 1000);
  std::vector<double> values;
  for (const auto& u : Drain(batch, false).updates) {
    if (u.kind() == analytics::UPDATE_KIND_HISTORY) values.push_back(u.value());
  }
  CHECK(values == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
}

TEST_CASE("history messages point into the shared chunks, nothing is copied per subscriber",
          "[server][subscriber_batch]") {
  Feed feed;
  for (int t = 0; t < 5; ++t) feed.Tick();
  analytics::SubscriptionRequest request;
  request.set_history_seconds(60);
  const MetricFilter filter = Filter({"revenue"}, {analytics::WINDOW_1M});
  const auto view = feed.hub.history().View(filter, 60);
  REQUIRE(view.chunks.size() == 5);
  SubscriberBatch batch;
  batch.StartInitial(Settings(filter), request, feed.hub.Latest(), feed.hub.history(), 0);
  size_t updates = 0;
  batch.NextMessage(&updates);  // the snapshot's revenue 1m: a shared message
  for (size_t i = 0; i < view.chunks.size(); ++i) {
    std::vector<grpc::Slice> slices;
    REQUIRE(batch.NextMessage(&updates).Dump(&slices).ok());
    REQUIRE(slices.size() == 1);
    const grpc::Slice& chunk = view.chunks[i]->bytes;
    CHECK(slices[0].begin() >= chunk.begin());
    CHECK(slices[0].end() <= chunk.end());
  }
  CHECK(batch.HasMessage());  // the end marker
}

TEST_CASE("SubscribeMetricBatches frames the same updates in bounded messages",
          "[server][subscriber_batch]") {
  Feed feed;
  for (int t = 0; t < 3600; ++t) {
    feed.Set(static_cast<size_t>(t) % 6, t);
    feed.Tick();
  }
  analytics::SubscriptionRequest request;
  request.set_history_seconds(3600);
  SubscriberBatch plain, batched;
  plain.StartInitial(Settings(Filter({})), request, feed.hub.Latest(), feed.hub.history(), 0);
  batched.StartInitial(Settings(Filter({}), true), request, feed.hub.Latest(), feed.hub.history(),
                       0);
  const Drained p = Drain(plain, false);
  const Drained b = Drain(batched, true);
  REQUIRE(p.updates.size() == 8 + 6 * 3600 + 1);
  REQUIRE(b.updates.size() == p.updates.size());
  for (size_t i = 0; i < p.updates.size(); ++i) {
    if (p.updates[i].SerializeAsString() != b.updates[i].SerializeAsString()) {
      FAIL("update " << i << " differs");
    }
  }
  CHECK(b.updates_counted == b.updates.size());
  // With history, messages of at most kMaxHistoryMessageBytes, each full but the last.
  constexpr size_t kLimit = SubscriberBatch::kMaxHistoryMessageBytes;
  REQUIRE(b.message_sizes.size() >= 4);
  size_t total = 0;
  for (size_t size : b.message_sizes) {
    CHECK(size <= kLimit);
    total += size;
  }
  CHECK(b.message_sizes.front() > kLimit - 100);
  CHECK(total / kLimit + 1 == b.message_sizes.size());

  SECTION("without history (or in deltas), messages of up to kMaxBatchMessageBytes") {
    // 3,600 series changing at once: far more than one 64 KiB message.
    Feed wide;
    for (int i = 0; i < 600; ++i) {
      rta::agg::MetricPoint point;
      point.name = "events_by_country";
      point.window = analytics::WINDOW_TOTAL;
      point.label_key = "country";
      point.label_value = std::string(200, 'a').append(std::to_string(i));
      wide.Add(point);
    }
    wide.Tick();
    SubscriberBatch snapshot;
    snapshot.StartInitial(Settings(Filter({}), true), {}, wide.hub.Latest(), wide.hub.history(), 0);
    const Drained d = Drain(snapshot, true);
    REQUIRE(d.updates.size() == wide.series() + 1);
    REQUIRE(d.message_sizes.size() >= 1);
    CHECK(d.message_sizes.front() > kLimit);
    for (size_t size : d.message_sizes) CHECK(size <= SubscriberBatch::kMaxBatchMessageBytes);
  }
}

TEST_CASE("resume answers with what changed since, or with a full snapshot",
          "[server][subscriber_batch]") {
  Feed feed;
  feed.Tick();
  feed.Tick();
  const uint64_t seen = feed.sequence();
  feed.Set(3, 42);  // page_views total
  feed.Tick();
  const MetricFilter filter = Filter({"page_views", "revenue"}, {analytics::WINDOW_TOTAL});
  analytics::SubscriptionRequest request;
  request.set_resume_after_sequence(seen);
  SECTION("same epoch: only the change, recovered") {
    request.set_resume_epoch(kEpoch);
    SubscriberBatch batch;
    batch.StartInitial(Settings(filter), request, feed.hub.Latest(), feed.hub.history(), 0);
    const auto updates = Drain(batch, false).updates;
    REQUIRE(updates.size() == 2);
    CHECK(updates[0].metric_type() == "page_views");
    CHECK(updates[0].value() == 42);
    CHECK(updates[0].kind() == analytics::UPDATE_KIND_DELTA);
    CHECK(updates[0].recovered());
    CHECK(updates[1].kind() == analytics::UPDATE_KIND_SNAPSHOT_END);
    CHECK(updates[1].recovered());
  }
  SECTION("another epoch: the full snapshot, not recovered") {
    request.set_resume_epoch(kEpoch + 1);
    SubscriberBatch batch;
    batch.StartInitial(Settings(filter), request, feed.hub.Latest(), feed.hub.history(), 0);
    const auto updates = Drain(batch, false).updates;
    REQUIRE(updates.size() == 3);
    CHECK(updates[0].kind() == analytics::UPDATE_KIND_SNAPSHOT);
    CHECK_FALSE(updates[0].recovered());
    CHECK(updates[1].kind() == analytics::UPDATE_KIND_SNAPSHOT);
    CHECK_FALSE(updates[2].recovered());
  }
}

TEST_CASE("deltas: the series changed since the last batch, skipped ticks counted",
          "[server][subscriber_batch]") {
  Feed feed;
  feed.Tick();
  SubscriberBatch batch;
  batch.StartInitial(Settings(Filter({"events_total", "page_views"}, {analytics::WINDOW_TOTAL})),
                     {}, feed.hub.Latest(), feed.hub.history(), 0);
  Drain(batch, false);
  batch.Complete();

  SECTION("the next tick: only what changed in it") {
    feed.Set(1, 5);  // events_total total
    feed.Set(4, 9);  // revenue 1m: filtered out
    batch.NoteTick(true);
    REQUIRE(batch.StartDelta(feed.Tick(), 0));
    const auto updates = Drain(batch, false).updates;
    REQUIRE(updates.size() == 1);
    CHECK(updates[0].metric_type() == "events_total");
    CHECK(updates[0].kind() == analytics::UPDATE_KIND_DELTA);
    CHECK(updates[0].value() == 5);
    CHECK(updates[0].skipped() == 0);
    batch.Complete();
    CHECK(batch.sent_sequence() == 2);
  }
  SECTION("nothing changed for this filter: no batch, but the subscriber is up to date") {
    feed.Set(4, 9);
    batch.NoteTick(true);
    CHECK_FALSE(batch.StartDelta(feed.Tick(), 0));
    CHECK_FALSE(batch.HasMessage());
    CHECK(batch.sent_sequence() == 2);
  }
  SECTION("ticks missed while busy: cumulative changes, the first carries the count") {
    feed.Set(1, 5);
    feed.Tick();
    CHECK(batch.NoteMissed(true));
    feed.Set(3, 7);  // page_views total
    feed.Tick();
    CHECK(batch.NoteMissed(true));
    feed.Set(1, 6);
    batch.NoteTick(true);
    REQUIRE(batch.StartDelta(feed.Tick(), 0));
    const auto updates = Drain(batch, false).updates;
    REQUIRE(updates.size() == 2);
    CHECK(updates[0].metric_type() == "events_total");
    CHECK(updates[0].value() == 6);
    CHECK(updates[0].skipped() == 2);
    CHECK(updates[0].sequence() == 4);
    CHECK(updates[1].metric_type() == "page_views");
    CHECK(updates[1].value() == 7);
    CHECK(updates[1].skipped() == 0);
    batch.Complete();
    CHECK(batch.sent_sequence() == 4);
  }
}

TEST_CASE("early ticks reach push subscribers only, others wait for the regular tick",
          "[server][subscriber_batch]") {
  Feed feed;
  feed.Tick();
  const bool push = GENERATE(false, true);
  SubscriberBatch batch;
  batch.StartInitial(Settings(Filter({"events_total"}, {analytics::WINDOW_TOTAL}), false, 0, push),
                     {}, feed.hub.Latest(), feed.hub.history(), 0);
  Drain(batch, false);
  batch.Complete();
  feed.Set(1, 1);
  const auto early = feed.Tick(/*early=*/true);
  batch.NoteTick(false);
  CHECK(batch.StartDelta(early, 0) == push);
  CHECK(batch.NoteMissed(false) == push);  // a non-push subscriber does not miss early ticks
  if (!push) {
    batch.NoteTick(true);  // the regular tick after it: the change arrives then
    feed.Tick();
    REQUIRE(batch.StartDelta(feed.hub.Latest(), 0));
    const auto updates = Drain(batch, false).updates;
    REQUIRE(updates.size() == 1);
    CHECK(updates[0].value() == 1);
  }
}

TEST_CASE("interval_ms paces batches by real time, changes accumulate meanwhile",
          "[server][subscriber_batch]") {
  Feed feed;
  feed.Tick();
  SubscriberBatch batch;
  batch.StartInitial(Settings(Filter({"events_total"}, {analytics::WINDOW_TOTAL}), false, 1000), {},
                     feed.hub.Latest(), feed.hub.history(), /*now_ms=*/10'000);
  Drain(batch, false);
  batch.Complete();
  feed.Set(1, 1);
  batch.NoteTick(true);
  CHECK_FALSE(batch.StartDelta(feed.Tick(), 10'500));
  feed.Set(1, 2);
  batch.NoteTick(true);
  CHECK_FALSE(batch.StartDelta(feed.Tick(), 10'999));
  batch.NoteTick(true);
  REQUIRE(batch.StartDelta(feed.Tick(), 11'000));
  const auto updates = Drain(batch, false).updates;
  REQUIRE(updates.size() == 1);
  CHECK(updates[0].value() == 2);
  batch.Complete();
  feed.Set(1, 3);
  batch.NoteTick(true);
  CHECK_FALSE(batch.StartDelta(feed.Tick(), 11'999));
}

TEST_CASE("the history keeps one chunk per second for an hour", "[server][subscriber_batch]") {
  Feed feed;
  for (int t = 0; t < 3700; ++t) feed.Tick();
  const auto view = feed.hub.history().View(Filter({}), 3600);
  REQUIRE(view.chunks.size() == 3600);  // seconds in (last - 3600, last]; older ones dropped
  CHECK(view.chunks.back()->second - view.chunks.front()->second == 3599);
  CHECK(view.series.size() == 6);
  CHECK(feed.hub.history().View(Filter({}), 10).chunks.size() == 10);
}
