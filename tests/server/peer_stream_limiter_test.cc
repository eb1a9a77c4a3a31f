#include "server/peer_stream_limiter.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using rta::server::PeerStreamLimiter;

TEST_CASE("each peer gets its own streams up to the limit", "[server][limits]") {
  PeerStreamLimiter limiter(3);
  for (int i = 0; i < 3; ++i) CHECK(limiter.TryAcquire("10.0.0.1"));
  CHECK_FALSE(limiter.TryAcquire("10.0.0.1"));
  CHECK(limiter.TryAcquire("10.0.0.2"));  // another peer is not affected
  limiter.Release("10.0.0.1");
  CHECK(limiter.TryAcquire("10.0.0.1"));
  CHECK(limiter.OpenForTest("10.0.0.1") == 3);
  for (int i = 0; i < 3; ++i) limiter.Release("10.0.0.1");
  CHECK(limiter.OpenForTest("10.0.0.1") == 0);
  limiter.Release("10.0.0.9");  // unknown: no effect
  CHECK(limiter.OpenForTest("10.0.0.9") == 0);
}

TEST_CASE("the counts stay exact when many threads take and give back", "[server][limits]") {
  PeerStreamLimiter limiter(1'000'000);
  std::atomic<int> refused{0};  // Catch2's assertions are not thread-safe: count, check after
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&limiter, &refused, t] {
      const std::string peer = "peer-" + std::to_string(t % 2);
      for (int i = 0; i < 20'000; ++i) {
        if (!limiter.TryAcquire(peer)) refused.fetch_add(1);
        if (i % 2 == 1) limiter.Release(peer);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(refused.load() == 0);
  CHECK(limiter.OpenForTest("peer-0") == 20'000);
  CHECK(limiter.OpenForTest("peer-1") == 20'000);
}
