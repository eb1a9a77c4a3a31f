#include "server/aggregator/dedupe_table.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "server/aggregator/hash.h"
#include "tests/aggregator/test_util.h"

namespace rta::agg {
namespace {

using testing::Cat;

using Outcome = DedupeTable::Outcome;

uint64_t IdHash(const std::string& id) { return detail::HashBytes(id, detail::kSeedEventId); }

TEST_CASE("dedupe table remembers ids for the horizon", "[aggregator][dedupe]") {
  DedupeTable table(16, 600, 1000);
  CHECK(table.capacity() == 65536);
  CHECK(table.CheckAndInsert(IdHash("a"), 1000) == Outcome::kInserted);
  CHECK(table.CheckAndInsert(IdHash("a"), 1000) == Outcome::kDuplicate);
  CHECK(table.CheckAndInsert(IdHash("b"), 1001) == Outcome::kInserted);
  CHECK(table.CheckAndInsert(IdHash("a"), 1600) == Outcome::kDuplicate);  // 600 s: still within
  CHECK(table.CheckAndInsert(IdHash("a"), 1601) == Outcome::kInserted);   // past the horizon
  CHECK(table.CheckAndInsert(IdHash("a"), 1602) == Outcome::kDuplicate);

  SECTION("a clock that steps back keeps ids") {
    CHECK(table.CheckAndInsert(IdHash("b"), 900) == Outcome::kDuplicate);
  }
}

TEST_CASE("dedupe table evicts the oldest id when a group is full of live ids",
          "[aggregator][dedupe]") {
  DedupeTable table(3, 600, 0);  // one group of 8 slots
  for (int i = 0; i < 8; ++i) {
    CHECK(table.CheckAndInsert(IdHash(Cat("id", i)), i) == Outcome::kInserted);
  }
  CHECK(table.CheckAndInsert(IdHash("id8"), 10) == Outcome::kInsertedEvicted);
  // id0 (the oldest) was evicted; the others are still remembered.
  for (int i = 1; i <= 8; ++i) {
    CHECK(table.CheckAndInsert(IdHash(Cat("id", i)), 10) == Outcome::kDuplicate);
  }
  CHECK(table.CheckAndInsert(IdHash("id0"), 10) == Outcome::kInsertedEvicted);

  SECTION("expired slots are reused without eviction") {
    CHECK(table.CheckAndInsert(IdHash("late"), 1000) == Outcome::kInserted);
  }
}

TEST_CASE("dedupe table counts each id once when threads race with the same ids",
          "[aggregator][dedupe]") {
  DedupeTable table(16, 600, 0);
  constexpr int kThreads = 4;
  constexpr int kIds = 5000;
  std::atomic<int> inserted{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      int mine = 0;
      for (int i = 0; i < kIds; ++i) {
        // Half the threads walk the ids forwards, half backwards, so that they meet head-on.
        const int id = t % 2 == 0 ? i : kIds - 1 - i;
        if (table.CheckAndInsert(IdHash(Cat("same-", id)), 5) == Outcome::kInserted) {
          ++mine;
        }
      }
      inserted += mine;
    });
  }
  go = true;
  for (auto& thread : threads) thread.join();
  CHECK(inserted.load() == kIds);
}

}  // namespace
}  // namespace rta::agg
