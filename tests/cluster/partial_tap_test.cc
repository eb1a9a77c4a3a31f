// The partial stream read once per node (server/cluster/partial_tap.h): the history takes a
// message the merger read only when it is what its own read at its position would return.
#include "server/cluster/partial_tap.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

using rta::cluster::NatsMsgPtr;
using rta::cluster::PartialTap;

namespace {

NatsMsgPtr Message(const std::string& body) {
  // The library's state, which a connection would have opened (idempotent).
  REQUIRE(nats_Open(-1) == NATS_OK);
  natsMsg* raw = nullptr;
  REQUIRE(natsMsg_Create(&raw, "rta.partial.0", nullptr, body.data(),
                         static_cast<int>(body.size())) == NATS_OK);
  return NatsMsgPtr(raw);
}

std::string Body(const PartialTap::Read& read) {
  return std::string(natsMsg_GetData(read.msg.get()),
                     static_cast<size_t>(natsMsg_GetDataLength(read.msg.get())));
}

constexpr std::chrono::milliseconds kNoWait{0};

}  // namespace

TEST_CASE("partial tap: a read is taken only where it answers the history's own read",
          "[cluster][partial_tap]") {
  PartialTap tap;
  // The merger read 5 (asked from 5), then 9 (asked from 6: 6 to 8 were trimmed), then 10.
  tap.Push(5, 5, Message("five"));
  tap.Push(6, 9, Message("nine"));
  tap.Push(10, 10, Message("ten"));

  SECTION("in order from the history's position") {
    auto read = tap.Take(5, kNoWait);
    REQUIRE(read.msg != nullptr);
    CHECK(Body(read) == "five");
    // At 6, 7 or 8 the first message is 9: the merger's read from 6 says so.
    read = tap.Take(7, kNoWait);
    REQUIRE(read.msg != nullptr);
    CHECK(read.sequence == 9);
    CHECK(read.from == 6);
    CHECK(Body(tap.Take(10, kNoWait)) == "ten");
    CHECK(tap.Take(11, kNoWait).msg == nullptr);
  }
  SECTION("reads before the history's position are dropped on the way") {
    auto read = tap.Take(10, kNoWait);
    REQUIRE(read.msg != nullptr);
    CHECK(Body(read) == "ten");
  }
  SECTION("a history before the merger's first read reads for itself") {
    // Is there a message at 3 or 4? The merger did not ask: it cannot say.
    CHECK(tap.Take(3, kNoWait).msg == nullptr);
    // And the queue is kept for when the history gets there.
    CHECK(Body(tap.Take(5, kNoWait)) == "five");
  }
  CHECK(tap.dropped() == 0);
}

TEST_CASE("partial tap: bounded and stoppable", "[cluster][partial_tap]") {
  PartialTap tap(/*max_bytes=*/10);
  tap.Push(1, 1, Message("12345"));
  tap.Push(2, 2, Message("67890"));
  tap.Push(3, 3, Message("x"));  // over 10 bytes: dropped
  CHECK(tap.dropped() == 1);
  CHECK(Body(tap.Take(1, kNoWait)) == "12345");
  CHECK(Body(tap.Take(2, kNoWait)) == "67890");
  // The history then reads 3 itself.
  CHECK(tap.Take(3, kNoWait).msg == nullptr);

  SECTION("a waiting take gets the next push") {
    std::thread merger([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      tap.Push(3, 4, Message("four"));
    });
    const auto read = tap.Take(3, std::chrono::seconds(10));
    merger.join();
    REQUIRE(read.msg != nullptr);
    CHECK(read.sequence == 4);
  }
  SECTION("a wait ends at its limit, or at Stop") {
    auto start = std::chrono::steady_clock::now();
    CHECK(tap.Take(3, std::chrono::milliseconds(100)).msg == nullptr);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(90));
    std::thread history([&] {
      start = std::chrono::steady_clock::now();
      CHECK(tap.Take(3, std::chrono::seconds(30)).msg == nullptr);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    tap.Stop();
    history.join();
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
    tap.Push(3, 3, Message("late"));  // refused after Stop
    CHECK(tap.dropped() == 2);
  }
}
