// Live segments (server/live_segments.cc, the filters of a subscription): the real server on an
// ephemeral loopback port, real stubs, the Prometheus endpoint over HTTP.
#include "server/live_segments.h"

#include <grpcpp/impl/codegen/sync_stream.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"

using analytics::MetricUpdate;
using rta::testing::DeadlineContext;
using rta::testing::MakeEvent;
using rta::testing::ReadInitial;
using rta::testing::ScrapeValue;
using rta::testing::ServerHarness;
using rta::testing::WaitFor;

namespace {

analytics::SubscriptionRequest SegmentRequest(
    const std::vector<std::pair<std::string, std::string>>& filters) {
  analytics::SubscriptionRequest request;
  for (const char* metric : {"events_total", "conversions", "revenue"}) {
    request.add_metric_types(metric);
  }
  request.add_windows(analytics::WINDOW_TOTAL);
  for (const auto& [dimension, value] : filters) {
    analytics::DimensionFilter* filter = request.add_filters();
    filter->set_dimension(dimension);
    filter->set_value(value);
  }
  return request;
}

analytics::EventData Visit(const std::string& id, const std::string& type, int64_t time_ms,
                           const std::string& session, const std::string& country,
                           const std::string& campaign = "") {
  analytics::EventData event = MakeEvent(id, type, time_ms, "v-" + session, session);
  event.set_country(country);
  event.set_utm_campaign(campaign);
  if (type == "purchase") event.set_value(25);
  return event;
}

// A subscription's latest value of each metric, read as updates come.
class Follower {
 public:
  Follower(analytics::AnalyticsService::Stub& stub, const analytics::SubscriptionRequest& request)
      : context_(DeadlineContext(30)), reader_(stub.SubscribeMetrics(context_.get(), request)) {
    for (const MetricUpdate& update : ReadInitial(*reader_)) {
      Note(update);
      started_ = started_ || update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END;
    }
  }
  ~Follower() { context_->TryCancel(); }

  // Reads until `metric` is `value`; every value seen on the way is kept.
  bool ReadUntil(const std::string& metric, double value) {
    MetricUpdate update;
    while (values_[metric] != value && reader_->Read(&update)) Note(update);
    return values_[metric] == value;
  }
  double value(const std::string& metric) { return values_[metric]; }
  // Whether the initial snapshot came (false: the call was refused; Finish() says why).
  bool started() const { return started_; }
  double max_seen(const std::string& metric) { return max_[metric]; }
  grpc::Status Finish() { return reader_->Finish(); }

 private:
  void Note(const MetricUpdate& update) {
    if (update.metric_type().empty()) return;
    values_[update.metric_type()] = update.value();
    max_[update.metric_type()] = std::max(max_[update.metric_type()], update.value());
  }
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<MetricUpdate>> reader_;
  std::map<std::string, double> values_;
  std::map<std::string, double> max_;
  bool started_ = false;
};

}  // namespace

TEST_CASE("a live filtered subscription sees only its segment",
          "[server][integration][live_segments]") {
  ServerHarness h;
  auto stub = h.NewStub();
  Follower germany(*stub, SegmentRequest({{"country", "DE"}}));
  Follower spring(*stub, SegmentRequest({{"utm_campaign", "spring"}}));
  Follower spring_germany(*stub, SegmentRequest({{"utm_campaign", "spring"}, {"country", "DE"}}));
  Follower everything(*stub, SegmentRequest({}));
  // The segments open at the tick after their first subscriber asked.
  h.server().TickForTest();
  REQUIRE(WaitFor([&] { return ScrapeValue(h, "analytics_live_segments") == 3; }));

  const int64_t now = h.clock().NowMs();
  std::vector<analytics::EventData> events;
  int germany_events = 0;
  int spring_conversions = 0;
  int spring_germany_events = 0;
  for (int i = 0; i < 90; ++i) {
    const std::string session = "s" + std::to_string(i);
    const std::string country = i % 3 == 0 ? "DE" : (i % 3 == 1 ? "FR" : "US");
    const bool from_spring = i % 5 == 0;
    // A landing page view (naming the campaign), then a purchase in the same country that
    // names none: the campaign's segment takes it from the session.
    events.push_back(
        Visit(session + "-l", "page_view", now, session, country, from_spring ? "spring" : ""));
    events.push_back(Visit(session + "-p", "purchase", now, session, country));
    germany_events += country == "DE" ? 2 : 0;
    spring_conversions += from_spring ? 1 : 0;
    spring_germany_events += from_spring && country == "DE" ? 2 : 0;
  }
  REQUIRE(h.ReportBatch(events).accepted() == events.size());
  h.server().TickForTest();

  REQUIRE(germany.ReadUntil("events_total", germany_events));
  REQUIRE(germany.ReadUntil("conversions", germany_events / 2));
  REQUIRE(spring.ReadUntil("conversions", spring_conversions));
  REQUIRE(spring.ReadUntil("revenue", spring_conversions * 25));
  REQUIRE(spring_germany.ReadUntil("events_total", spring_germany_events));
  REQUIRE(everything.ReadUntil("events_total", events.size()));
  // Never more than the segment: no update carried another segment's (or the global) count.
  CHECK(germany.max_seen("events_total") == germany_events);
  CHECK(spring.max_seen("conversions") == spring_conversions);
  CHECK(spring_germany.max_seen("events_total") == spring_germany_events);

  // A second subscriber of the same conditions, in another order, shares the segment and gets
  // its numbers in its initial snapshot.
  Follower again(*stub, SegmentRequest({{"country", "DE"}, {"utm_campaign", "spring"}}));
  CHECK(again.value("events_total") == spring_germany_events);
  CHECK(ScrapeValue(h, "analytics_live_segments") == 3);
  CHECK(ScrapeValue(h, "analytics_live_segments_opened_total") == 3);
}

TEST_CASE("live segments are bounded by --max-live-segments and idle ones are freed",
          "[server][integration][live_segments]") {
  auto config = ServerHarness::DefaultConfig();
  config.max_live_segments = 2;
  config.live_segment_idle_s = 0;
  ServerHarness h(config);
  auto stub = h.NewStub();
  const auto start = [&](const std::string& country) {
    return std::make_unique<Follower>(*stub, SegmentRequest({{"country", country}}));
  };
  auto de = start("DE");
  auto fr = start("FR");
  REQUIRE(de->started());
  REQUIRE(fr->started());
  auto us = start("US");
  CHECK_FALSE(us->started());
  const grpc::Status status = us->Finish();
  CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(status.error_message(), Catch::Contains("--max-live-segments"));
  h.server().TickForTest();
  CHECK(ScrapeValue(h, "analytics_live_segments_refused_total") == 1);
  CHECK(ScrapeValue(h, "analytics_live_segments") == 2);

  // A second watcher of DE shares it; DE stays kept while either watches.
  auto de_again = start("DE");
  REQUIRE(de_again->started());
  de.reset();
  CHECK_FALSE(start("US")->started());
  // Nobody watches DE any more: US takes its place (the idle one goes first).
  de_again.reset();
  REQUIRE(WaitFor([&] {
    us = start("US");  // kept: a segment nobody watches is freed at the next tick (idle 0 s)
    return us->started();
  }));
  h.server().TickForTest();
  CHECK(ScrapeValue(h, "analytics_live_segments") == 2);
  CHECK(ScrapeValue(h, "analytics_live_segments_opened_total") == 3);
  // Idle for 0 s: freed at the next tick once nobody watches.
  fr.reset();
  us.reset();
  CHECK(WaitFor([&] {
    h.server().TickForTest();
    return ScrapeValue(h, "analytics_live_segments") == 0;
  }));
}

TEST_CASE("a subscription's bad filters are INVALID_ARGUMENT naming the field",
          "[server][integration][live_segments]") {
  ServerHarness h;
  auto stub = h.NewStub();
  const auto refusal = [&](const std::vector<std::pair<std::string, std::string>>& filters) {
    auto context = DeadlineContext();
    auto reader = stub->SubscribeMetrics(context.get(), SegmentRequest(filters));
    MetricUpdate update;
    while (reader->Read(&update)) {
    }
    return reader->Finish();
  };
  grpc::Status status = refusal({{"city", "Berlin"}});
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(status.error_message(), Catch::StartsWith("filters[0].dimension: unknown dimension "
                                                       "'city'"));
  status = refusal({{"country", "DE"}, {"country", "FR"}});
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(status.error_message(), Catch::StartsWith("filters[1].dimension: 'country' is "
                                                       "already filtered by filters[0]"));
  status = refusal({{"page", std::string(300, 'x')}});
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(status.error_message(), Catch::StartsWith("filters[0].value: 300 bytes"));
  CHECK(ScrapeValue(h, "analytics_live_segments_opened_total") == 0);
}
