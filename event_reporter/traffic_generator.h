#pragma once

#include <cstdint>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "analytics.pb.h"

namespace rta::reporter {

// Probability of going on from each funnel stage to the next. A session that stops at the
// landing page is a bounce.
struct FunnelRates {
  // Defaults give a typical shop: about 45% bounce, 11% of sessions add to cart, 3% buy.
  double landing_to_product = 0.55;
  double product_to_cart = 0.2;
  double cart_to_checkout = 0.55;
  double checkout_to_purchase = 0.55;
};

struct GeneratorOptions {
  uint64_t seed = 1;
  double events_per_second = 100;  // long-run mean; arrivals are Poisson, so it is bursty
  int64_t start_ms = 0;            // time of the first event
  FunnelRates funnel;
  uint32_t products = 200;  // catalog size; popularity is Zipf-like
};

// Synthetic website traffic that behaves like a real site, as a time-ordered event stream.
//
// Visitors (about a third of them returning) arrive as a Poisson process and each runs a
// session: a landing page from a channel (direct, search, social, e-mail, paid campaigns), then
// maybe products (Zipf popularity), cart, checkout and purchase with the funnel's drop-off;
// every page view is followed by its page_load with a log-normal time (mobile is slower),
// purchases carry revenue. Country and device shares follow a typical international shop.
//
// Deterministic: the same options give the same events, ids included (ids embed the seed, so
// two different seeds never collide on the server's de-duplication). The simulation starts a
// few minutes before start_ms and drops those events, so the first second already has the
// steady-state mix of sessions in progress. Not thread-safe; one generator per thread.
class TrafficGenerator {
 public:
  explicit TrafficGenerator(const GeneratorOptions& options);

  // The next event (timestamps never decrease). The stream never ends.
  void Next(analytics::EventData* event);

  double mean_events_per_session() const { return mean_events_per_session_; }

 private:
  struct Visitor {
    std::string id;
    std::string country;
    std::string device;
  };
  struct ScriptedEvent {
    int64_t time_ms;
    analytics::EventData event;
  };
  struct Session {
    std::vector<ScriptedEvent> script;  // in time order
    size_t next = 0;
  };
  struct Due {  // a session's next event time, for the priority queue
    int64_t time_ms;
    uint64_t order;  // ties break by creation order, for determinism
    size_t slot;
    bool operator>(const Due& other) const {
      return time_ms != other.time_ms ? time_ms > other.time_ms : order > other.order;
    }
  };

  std::vector<ScriptedEvent> ScriptSession(int64_t start_ms, const Visitor& visitor,
                                           const std::string& session_id, std::mt19937_64& rng);
  const Visitor& PickVisitor();
  void StartSession(int64_t time_ms);
  void PopNext(ScriptedEvent* out);

  GeneratorOptions options_;
  std::string seed_tag_;
  std::mt19937_64 rng_;
  std::vector<double> product_prices_;
  std::discrete_distribution<uint32_t> product_popularity_;
  std::vector<Visitor> visitors_;  // the latest kMaxVisitors seen (a ring), for returning visits
  uint64_t visitors_created_ = 0;
  uint64_t sessions_started_ = 0;
  uint64_t events_emitted_ = 0;
  double mean_events_per_session_ = 1;
  double sessions_per_ms_ = 0;
  double next_arrival_ms_ = 0;     // fractional: high rates start several sessions per ms
  std::vector<Session> sessions_;  // slots; finished ones are reused
  std::vector<size_t> free_slots_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
};

}  // namespace rta::reporter
