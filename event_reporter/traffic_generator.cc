#include "event_reporter/traffic_generator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace rta::reporter {
namespace {

constexpr size_t kMaxVisitors = 100'000;
constexpr double kReturningVisitorShare = 0.35;
constexpr int64_t kWarmUpMs = 5 * 60'000;  // longer than almost every session
constexpr double kMaxWarmUpEvents = 200'000;
constexpr double kMeanThinkMs = 12'000;
constexpr double kSignupShare = 0.03;
constexpr double kClickShare = 0.4;

// A value with a weight, for the categorical shares below.
template <typename T>
struct Weighted {
  T value;
  double weight;
};

struct Channel {
  const char* referrer;
  const char* utm_source;
  const char* utm_campaign;
};

// Shares of a typical international web shop, in percent.
constexpr Weighted<const char*> kCountries[] = {
    {"US", 31}, {"DE", 10}, {"GB", 8}, {"IN", 7}, {"FR", 6}, {"BR", 5}, {"CA", 4},
    {"JP", 4},  {"ES", 3},  {"NL", 3}, {"IT", 3}, {"AU", 3}, {"MX", 2}, {"SE", 2},
    {"PL", 2},  {"KR", 2},  {"CH", 1}, {"AT", 1}, {"IE", 1}, {"ZA", 1}, {"NG", 1}};
constexpr Weighted<const char*> kDevices[] = {{"desktop", 49}, {"mobile", 45}, {"tablet", 6}};
constexpr Weighted<Channel> kChannels[] = {
    {{"", "", ""}, 30},  // direct
    {{"google.com", "", ""}, 27},
    {{"bing.com", "", ""}, 4},
    {{"duckduckgo.com", "", ""}, 3},
    {{"facebook.com", "", ""}, 6},
    {{"instagram.com", "", ""}, 3},
    {{"x.com", "", ""}, 2},
    {{"reddit.com", "", ""}, 2},
    {{"linkedin.com", "", ""}, 1},
    {{"mail.google.com", "newsletter", "weekly_digest"}, 5},
    {{"outlook.live.com", "newsletter", "black_friday_preview"}, 2},
    {{"google.com", "google", "black_friday"}, 7},
    {{"google.com", "google", "brand_search"}, 3},
    {{"facebook.com", "facebook", "retargeting"}, 3},
    {{"instagram.com", "instagram", "winter_collection"}, 2},
};
constexpr const char* kBlogPosts[] = {"/blog/gift-guide", "/blog/care-instructions",
                                      "/blog/size-chart", "/blog/sustainability",
                                      "/blog/new-arrivals"};
constexpr const char* kClickTargets[] = {"#add-to-wishlist", "#image-gallery", "#reviews",
                                         "#size-selector",   "#share",         "#related-products"};

template <typename T, size_t N>
std::discrete_distribution<size_t> Shares(const Weighted<T> (&table)[N]) {
  std::vector<double> weights;
  for (const auto& entry : table) weights.push_back(entry.weight);
  return {weights.begin(), weights.end()};
}

template <typename T, size_t N>
const T& Draw(const Weighted<T> (&table)[N], std::mt19937_64& rng) {
  // Built on every call: cheap for tables this small and keeps the class free of one member
  // per table. The distributions are deterministic for a given engine state.
  return table[Shares(table)(rng)].value;
}

bool Chance(double probability, std::mt19937_64& rng) {
  return std::uniform_real_distribution<double>(0, 1)(rng) < probability;
}

double PageLoadMs(const std::string& device, std::mt19937_64& rng) {
  // Log-normal: a typical median with a long tail of slow loads; mobile networks are slower.
  const double median = device == "mobile" ? 1'100 : device == "tablet" ? 900 : 650;
  return std::round(std::lognormal_distribution<double>(std::log(median), 0.55)(rng));
}

std::string Hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

TrafficGenerator::TrafficGenerator(const GeneratorOptions& options)
    : options_(options), seed_tag_(Hex(options.seed)), rng_(options.seed) {
  // Product prices are log-normal around 35 with a few expensive items; popularity is Zipf-like
  // (weight 1/rank^1.1), so a handful of products get most of the views.
  std::vector<double> popularity;
  for (uint32_t rank = 1; rank <= std::max<uint32_t>(options_.products, 1); ++rank) {
    popularity.push_back(1.0 / std::pow(rank, 1.1));
    product_prices_.push_back(
        std::round(std::lognormal_distribution<double>(std::log(35), 0.8)(rng_) * 100) / 100);
  }
  product_popularity_ = {popularity.begin(), popularity.end()};

  // Calibrate the session arrival rate so the long-run event rate is the one asked for.
  std::mt19937_64 calibration(options_.seed ^ 0x9e3779b97f4a7c15ULL);
  const Visitor sample{"calibration", "US", "desktop"};
  constexpr int kSample = 4'000;
  size_t events = 0;
  for (int i = 0; i < kSample; ++i) events += ScriptSession(0, sample, "", calibration).size();
  mean_events_per_session_ = static_cast<double>(events) / kSample;
  sessions_per_ms_ = std::max(options_.events_per_second, 1e-6) / 1000 / mean_events_per_session_;
  // Warm up for a few minutes of site time, but never more than kMaxWarmUpEvents of work.
  const double warm_up_ms = std::min<double>(
      kWarmUpMs, kMaxWarmUpEvents / std::max(options_.events_per_second, 1e-6) * 1000);
  next_arrival_ms_ = static_cast<double>(options_.start_ms) - warm_up_ms;
}

const TrafficGenerator::Visitor& TrafficGenerator::PickVisitor() {
  if (!visitors_.empty() && Chance(kReturningVisitorShare, rng_)) {
    // Returning visitors favour the recent ones, as a real site's do.
    const double scale = static_cast<double>(visitors_.size());
    const auto back = static_cast<size_t>(
        std::min(scale - 1, std::exponential_distribution<double>(4 / scale)(rng_)));
    const size_t newest = (visitors_created_ - 1) % kMaxVisitors;
    return visitors_[(newest + visitors_.size() - back) % visitors_.size()];
  }
  Visitor visitor{"v" + seed_tag_ + "-" + std::to_string(++visitors_created_),
                  Draw(kCountries, rng_), Draw(kDevices, rng_)};
  if (visitors_.size() < kMaxVisitors) {
    visitors_.push_back(std::move(visitor));
    return visitors_.back();
  }
  Visitor& slot = visitors_[(visitors_created_ - 1) % kMaxVisitors];
  slot = std::move(visitor);
  return slot;
}

std::vector<TrafficGenerator::ScriptedEvent> TrafficGenerator::ScriptSession(
    int64_t start_ms, const Visitor& visitor, const std::string& session_id, std::mt19937_64& rng) {
  std::vector<ScriptedEvent> script;
  int64_t now = start_ms;
  const auto add = [&](const char* type, const std::string& page, double value) {
    analytics::EventData& event = script.emplace_back(ScriptedEvent{now, {}}).event;
    event.set_event_type(type);
    event.set_timestamp_ms(now);
    event.set_session_id(session_id);
    event.set_visitor_id(visitor.id);
    event.set_country(visitor.country);
    event.set_device(visitor.device);
    if (!page.empty()) event.set_page(page);
    if (value != 0) event.set_value(value);
    return &event;
  };
  const auto think = [&] {
    now +=
        1'000 + static_cast<int64_t>(std::exponential_distribution<double>(1 / kMeanThinkMs)(rng));
  };
  // A page view, its page_load when the page has loaded, and maybe a click on it. Returns the
  // page view's index (a pointer would not survive the script growing).
  const auto view = [&](const std::string& page) {
    const size_t page_view = script.size();
    add("page_view", page, 0);
    const double load_ms = PageLoadMs(visitor.device, rng);
    now += static_cast<int64_t>(load_ms);
    add("page_load", page, load_ms);
    if (Chance(kClickShare, rng)) {
      now += 500 + static_cast<int64_t>(std::exponential_distribution<double>(1 / 3'000.0)(rng));
      add("click", page, 0)
          ->mutable_properties()
          ->insert({"target", kClickTargets[rng() % std::size(kClickTargets)]});
    }
    return page_view;
  };
  const auto product_page = [&](uint32_t* product) {
    *product = product_popularity_(rng);
    return "/products/" + std::to_string(*product + 1);
  };

  const Channel& channel = Draw(kChannels, rng);
  uint32_t product = 0;
  std::string landing;
  const double roll = std::uniform_real_distribution<double>(0, 1)(rng);
  if (channel.utm_campaign[0] != '\0') {
    landing = roll < 0.5 ? "/sale" : product_page(&product);
  } else if (channel.referrer[0] == '\0') {
    landing = roll < 0.6 ? "/" : product_page(&product);
  } else {
    landing = roll < 0.3   ? kBlogPosts[rng() % std::size(kBlogPosts)]
              : roll < 0.5 ? "/"
                           : product_page(&product);
  }
  analytics::EventData* landing_view = &script[view(landing)].event;
  if (channel.referrer[0] != '\0') landing_view->set_referrer(channel.referrer);
  if (channel.utm_source[0] != '\0') landing_view->set_utm_source(channel.utm_source);
  if (channel.utm_campaign[0] != '\0') landing_view->set_utm_campaign(channel.utm_campaign);

  const FunnelRates& funnel = options_.funnel;
  if (!Chance(funnel.landing_to_product, rng)) return script;  // bounce
  if (Chance(kSignupShare, rng)) {
    think();
    add("signup", "/account/new", 0);
  }
  // Browsing: one product page or more (geometric, mean 2).
  do {
    think();
    view(product_page(&product));
  } while (Chance(0.5, rng));
  if (!Chance(funnel.product_to_cart, rng)) return script;
  think();
  const double price = product_prices_[product];
  add("add_to_cart", "/products/" + std::to_string(product + 1), price);
  think();
  view("/cart");
  if (!Chance(funnel.cart_to_checkout, rng)) return script;  // an abandoned cart
  think();
  view("/checkout");
  if (!Chance(funnel.checkout_to_purchase, rng)) return script;
  think();
  // The order total: the product, sometimes several, plus shipping.
  const int quantity = 1 + static_cast<int>(std::geometric_distribution<int>(0.7)(rng));
  add("purchase", "/checkout", std::round((price * quantity + 4.95) * 100) / 100);
  view("/checkout/confirmation");
  return script;
}

void TrafficGenerator::StartSession(int64_t time_ms) {
  const Visitor& visitor = PickVisitor();
  const std::string session_id = "s" + seed_tag_ + "-" + std::to_string(++sessions_started_);
  Session session{ScriptSession(time_ms, visitor, session_id, rng_), 0};
  size_t slot;
  if (free_slots_.empty()) {
    slot = sessions_.size();
    sessions_.push_back(std::move(session));
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
    sessions_[slot] = std::move(session);
  }
  due_.push(Due{time_ms, sessions_started_, slot});
}

void TrafficGenerator::PopNext(ScriptedEvent* out) {
  // Sessions arrive while they are due before the earliest pending event.
  while (due_.empty() || next_arrival_ms_ <= static_cast<double>(due_.top().time_ms)) {
    StartSession(static_cast<int64_t>(std::ceil(next_arrival_ms_)));
    next_arrival_ms_ += std::exponential_distribution<double>(sessions_per_ms_)(rng_);
  }
  const Due due = due_.top();
  due_.pop();
  Session& session = sessions_[due.slot];
  *out = std::move(session.script[session.next++]);
  if (session.next < session.script.size()) {
    due_.push(Due{session.script[session.next].time_ms, due.order, due.slot});
  } else {
    session.script.clear();
    free_slots_.push_back(due.slot);
  }
}

void TrafficGenerator::Next(analytics::EventData* event) {
  ScriptedEvent next;
  do {
    PopNext(&next);
  } while (next.time_ms < options_.start_ms);  // the warm-up's events are dropped
  *event = std::move(next.event);
  event->set_event_id("g" + seed_tag_ + "-" + std::to_string(++events_emitted_));
}

}  // namespace rta::reporter
