// traffic_generator: deterministic for a seed, shaped like a real site.
#include "event_reporter/traffic_generator.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>

TEST_CASE("the generator is deterministic for a seed and shaped like a real site",
          "[reporter][generator]") {
  rta::reporter::GeneratorOptions options;
  options.seed = 42;
  options.events_per_second = 100;
  options.start_ms = 1'764'000'000'000;
  rta::reporter::TrafficGenerator a(options), b(options);
  options.seed = 43;
  rta::reporter::TrafficGenerator other(options);
  analytics::EventData x, y, z;
  std::map<std::string, int> types;
  std::set<std::string> sessions, bounced_candidates;
  int64_t previous = 0, first = 0;
  constexpr int kEvents = 30'000;
  bool all_equal = true, all_differ = true;
  for (int i = 0; i < kEvents; ++i) {
    a.Next(&x);
    b.Next(&y);
    other.Next(&z);
    all_equal &= x.SerializeAsString() == y.SerializeAsString();
    all_differ &= x.event_id() != z.event_id();
    CHECK(x.timestamp_ms() >= previous);
    previous = x.timestamp_ms();
    if (i == 0) first = x.timestamp_ms();
    ++types[x.event_type()];
    sessions.insert(x.session_id());
    if (x.event_type() == "page_load") CHECK(x.value() > 0);
    if (x.event_type() == "purchase") CHECK(x.value() > 0);
  }
  CHECK(all_equal);
  CHECK(all_differ);
  CHECK(first >= options.start_ms);
  // The long-run rate is the one asked for (Poisson arrivals: within 10% over 300 s).
  const double seconds = (previous - first) / 1000.0;
  CHECK(kEvents / seconds == Approx(100).epsilon(0.1));
  // Every page view has its page load; the funnel narrows.
  CHECK(types["page_view"] == Approx(types["page_load"]).epsilon(0.01));
  CHECK(types["page_view"] > types["add_to_cart"]);
  CHECK(types["add_to_cart"] > types["purchase"]);
  CHECK(types["purchase"] > 0);
  CHECK(types["click"] > 0);
  CHECK(sessions.size() > 1'000);
}

TEST_CASE("a funnel that nobody leaves the landing page of has no purchases",
          "[reporter][generator]") {
  rta::reporter::GeneratorOptions options;
  options.funnel.landing_to_product = 0;
  rta::reporter::TrafficGenerator generator(options);
  analytics::EventData event;
  for (int i = 0; i < 5'000; ++i) {
    generator.Next(&event);
    REQUIRE(event.event_type() != "purchase");
    REQUIRE(event.event_type() != "add_to_cart");
  }
}
