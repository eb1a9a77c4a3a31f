// Counts heap allocations made by the calling thread, to check that the ingest path stops
// allocating once its shard's deltas have grown to their working size.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <new>
#include <vector>

#include "server/aggregator/aggregator.h"
#include "tests/aggregator/test_util.h"

namespace {

thread_local long t_allocations = 0;

void* CountedAllocate(std::size_t size) {
  ++t_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

}  // namespace

// Replacing the global operator new / delete is the standard way to observe allocations. Every
// form that frees with our delete must allocate with malloc too (ASan checks the pairing), so
// the nothrow forms are replaced as well; the aligned forms keep their library definitions,
// which pair with each other.
void* operator new(std::size_t size) { return CountedAllocate(size); }
void* operator new[](std::size_t size) { return CountedAllocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  ++t_allocations;
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  ++t_allocations;
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace rta::agg {
namespace {

using testing::Cat;
using testing::Event;
using testing::kStartMs;

std::vector<analytics::EventData> Batch(int round, int n) {
  std::vector<analytics::EventData> events;
  for (int i = 0; i < n; ++i) {
    const char* types[] = {"page_view", "click", "page_load", "purchase"};
    auto event =
        Event(Cat("r", round, "-", i), types[i % 4], kStartMs - (i % 3) * 1000,
              Cat("visitor-with-a-long-name-", i % 97), Cat("session-with-a-long-name-", i % 31));
    event.set_page(Cat("/a/page/path/that/does/not/fit/in/sso/", i % 13));
    event.set_referrer(i % 2 ? "https://www.example.com/some/referring/page" : "");
    event.set_utm_campaign(i % 5 ? "" : "a-campaign-name-longer-than-sso");
    event.set_country(i % 3 ? "DE" : "FR");
    event.set_device("desktop-or-something-long");
    event.set_value(12.5);
    events.push_back(std::move(event));
  }
  return events;
}

TEST_CASE("ingest allocates nothing once the shard deltas are warm", "[aggregator][alloc]") {
  ManualClock clock(kStartMs);
  AggregatorConfig config;
  config.dedupe_capacity_log2 = 16;
  Aggregator aggregator(config, clock);
  // Two rounds warm both deltas of this thread's shard (active and spare swap every tick).
  for (int round = 0; round < 2; ++round) {
    for (const auto& event : Batch(round, 2000)) {
      REQUIRE(aggregator.Ingest(event).outcome == IngestOutcome::kAccepted);
    }
    aggregator.Tick();
  }
  const long before_batch = t_allocations;
  const auto events = Batch(2, 2000);
  REQUIRE(t_allocations > before_batch);  // the counter does see this thread's allocations
  const long before = t_allocations;
  int accepted = 0;
  for (const auto& event : events) {
    accepted += aggregator.Ingest(event).outcome == IngestOutcome::kAccepted;
  }
  for (int i = 0; i < 10; ++i) aggregator.RecordSignal(SessionSignal::kRageClick, 0);
  const long allocations = t_allocations - before;
  CHECK(accepted == 2000);
  CHECK(allocations == 0);
  const long before_duplicates = t_allocations;
  int duplicates = 0;
  for (const auto& event : events) {
    duplicates += aggregator.Ingest(event).outcome == IngestOutcome::kDuplicate;
  }
  const long duplicate_allocations = t_allocations - before_duplicates;
  CHECK(duplicates == 2000);
  CHECK(duplicate_allocations == 0);
}

}  // namespace
}  // namespace rta::agg
