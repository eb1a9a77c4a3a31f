#include "server/producer_table.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

namespace rta::server {
namespace {

using Verdict = ProducerTable::Verdict;

Verdict Offer(ProducerTable& table, const std::string& producer, uint64_t sequence,
              int64_t now_ms = 1000, BatchCounts counts = {}, uint64_t* expected = nullptr,
              BatchCounts* original = nullptr) {
  ProducerTable::Batch batch;
  BatchCounts seen;
  uint64_t next = 0;
  const Verdict verdict = table.Begin(producer, sequence, now_ms, &batch, &seen, &next);
  if (verdict == Verdict::kNew) {
    counts.sequence = sequence;
    batch.Commit(counts, now_ms);
  }
  if (expected != nullptr) *expected = next;
  if (original != nullptr) *original = seen;
  return verdict;
}

TEST_CASE("producer table: sequences are new once, then duplicates, and a gap names the next one") {
  ProducerTable table(100, 60'000);
  CHECK(Offer(table, "p", 1, 1000, {0, 10, 0, 0}) == Verdict::kNew);
  CHECK(Offer(table, "p", 2, 1000, {0, 7, 2, 1}) == Verdict::kNew);
  BatchCounts original;
  CHECK(Offer(table, "p", 2, 1000, {}, nullptr, &original) == Verdict::kDuplicate);
  CHECK(original.sequence == 2);
  CHECK(original.accepted == 7);
  CHECK(original.duplicates == 2);
  CHECK(original.rejected == 1);
  CHECK(Offer(table, "p", 1, 1000, {}, nullptr, &original) == Verdict::kDuplicate);
  CHECK(original.accepted == 10);
  uint64_t expected = 0;
  CHECK(Offer(table, "p", 5, 1000, {}, &expected) == Verdict::kGap);
  CHECK(expected == 3);
  CHECK(Offer(table, "p", 3) == Verdict::kNew);
  // Another producer is independent, and an unknown one may start anywhere.
  CHECK(Offer(table, "q", 41) == Verdict::kNew);
  CHECK(Offer(table, "q", 41) == Verdict::kDuplicate);
  CHECK(table.size() == 2);
}

TEST_CASE("producer table: counts older than the remembered batches are not made up") {
  ProducerTable table(100, 60'000);
  for (uint64_t s = 1; s <= 20; ++s) REQUIRE(Offer(table, "p", s, 1000, {0, 3, 0, 0}) == Verdict::kNew);
  BatchCounts original;
  CHECK(Offer(table, "p", 20, 1000, {}, nullptr, &original) == Verdict::kDuplicate);
  CHECK(original.accepted == 3);
  CHECK(Offer(table, "p", 2, 1000, {}, nullptr, &original) == Verdict::kDuplicate);
  CHECK(original.sequence == 2);
  CHECK(original.accepted + original.duplicates + original.rejected == 0);  // unknown
}

TEST_CASE("producer table: bounded, idle producers expire, busy ones stay") {
  ProducerTable table(2, 10'000);
  CHECK(Offer(table, "a", 1, 1000) == Verdict::kNew);
  CHECK(Offer(table, "b", 1, 5000) == Verdict::kNew);
  CHECK(Offer(table, "c", 1, 5000) == Verdict::kFull);
  CHECK(table.Expire(12'000) == 1);  // a: idle 11 s > 10 s
  CHECK(table.size() == 1);
  CHECK(Offer(table, "c", 1, 12'000) == Verdict::kNew);
  {
    ProducerTable::Batch held;
    BatchCounts original;
    uint64_t expected = 0;
    REQUIRE(table.Begin("b", 2, 5000, &held, &original, &expected) == Verdict::kNew);
    CHECK(table.Expire(100'000) == 1);  // c goes; b is held by a batch in progress
    CHECK(table.size() == 1);
  }
  CHECK(table.Expire(100'000) == 1);
  CHECK(table.size() == 0);
}

TEST_CASE("producer table: Serialize/Restore keeps every producer and refuses damage") {
  ProducerTable table(100, 60'000);
  for (int p = 0; p < 50; ++p) {
    for (uint64_t s = 1; s <= static_cast<uint64_t>(p % 12) + 1; ++s) {
      REQUIRE(Offer(table, "producer-" + std::to_string(p), s, 1000 + p,
                    {0, static_cast<uint32_t>(p), 1, 0}) == Verdict::kNew);
    }
  }
  const std::string bytes = table.Serialize();
  ProducerTable restored(100, 60'000);
  std::string error;
  REQUIRE(restored.Restore(bytes, &error));
  CHECK(restored.size() == 50);
  for (int p = 0; p < 50; ++p) {
    const uint64_t last = static_cast<uint64_t>(p % 12) + 1;
    BatchCounts original;
    CHECK(Offer(restored, "producer-" + std::to_string(p), last, 2000, {}, nullptr, &original) ==
          Verdict::kDuplicate);
    CHECK(original.accepted == static_cast<uint32_t>(p));
    CHECK(Offer(restored, "producer-" + std::to_string(p), last + 1) == Verdict::kNew);
  }
  CHECK(restored.Serialize().size() == bytes.size());
  ProducerTable damaged(100, 60'000);
  CHECK_FALSE(damaged.Restore(bytes.substr(0, bytes.size() - 3), &error));
  CHECK_FALSE(error.empty());
  CHECK_FALSE(damaged.Restore(bytes + "x", &error));
}

TEST_CASE("producer table: two streams of one producer take turns and every sequence counts once") {
  ProducerTable table(100, 60'000);
  std::atomic<int> news{0};
  std::vector<std::thread> threads;
  // Each thread offers sequences 1..400 of the same producer, as a client and its reconnected
  // second stream would: each sequence must be new exactly once.
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint64_t s = 1; s <= 400; ++s) {
        for (;;) {
          uint64_t expected = 0;
          const Verdict verdict = Offer(table, "shared", s, 1000, {0, 1, 0, 0}, &expected);
          if (verdict == Verdict::kNew) news.fetch_add(1);
          if (verdict != Verdict::kGap) break;
          std::this_thread::yield();  // another thread is behind: it will catch up
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(news.load() == 400);
}

}  // namespace
}  // namespace rta::server
