// Partition leases (server/cluster/partition_leases) in a real 3-server NATS cluster with
// JetStream (tests/support/nats_cluster): how partitions split between nodes, move when one
// leaves or is cut off, and that a node cut off stops owning.
#include "server/cluster/partition_leases.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/nats_cluster.h"

using rta::cluster::NatsSession;
using rta::cluster::PartitionLeaseCallbacks;
using rta::cluster::PartitionLeaseOptions;
using rta::cluster::PartitionLeases;
using rta::cluster::PreferredOwner;
using rta::testing::NatsCluster;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kPartitions = 12;
constexpr int kLeaseMs = 1500;

// A node: its NATS connection, its leases, and what its callbacks were told.
struct LeaseNode {
  std::unique_ptr<NatsSession> session;
  std::unique_ptr<PartitionLeases> leases;
  std::mutex mu;
  std::set<uint32_t> working;  // acquired and not lost since
  std::map<uint32_t, uint64_t> revisions;
  int double_acquires = 0;  // acquired() for a partition it already worked on
  int unknown_losses = 0;   // lost() for a partition it did not work on

  LeaseNode(const NatsCluster& cluster, const std::string& name) {
    std::string error;
    session = NatsSession::Connect(cluster.urls(), 2000, &error);
    INFO(error);
    REQUIRE(session != nullptr);
    PartitionLeaseOptions options;
    options.node = name;
    options.partitions = kPartitions;
    options.lease_ms = kLeaseMs;
    options.connect_timeout_ms = 30'000;  // a new cluster elects its JetStream leader first
    PartitionLeaseCallbacks callbacks;
    callbacks.acquired = [this](uint32_t partition, uint64_t revision) {
      std::lock_guard lock(mu);
      if (!working.insert(partition).second) ++double_acquires;
      revisions[partition] = revision;
    };
    callbacks.lost = [this](uint32_t partition) {
      std::lock_guard lock(mu);
      if (working.erase(partition) == 0) ++unknown_losses;
    };
    leases = PartitionLeases::Start(session.get(), options, callbacks, &error);
    INFO(error);
    REQUIRE(leases != nullptr);
  }

  // The leases first: their destructor calls lost(), which uses the members below.
  ~LeaseNode() { leases.reset(); }

  std::set<uint32_t> Working() {
    std::lock_guard lock(mu);
    return working;
  }
};

// Waits (up to `limit`) until `done` holds; returns how long it took, or -1 ms.
template <typename Predicate>
std::chrono::milliseconds WaitFor(Predicate done, std::chrono::milliseconds limit) {
  const auto start = SteadyClock::now();
  while (SteadyClock::now() - start < limit) {
    if (done()) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::chrono::milliseconds(-1);
}

std::set<uint32_t> PreferredSet(const std::vector<std::string>& members, const std::string& node) {
  std::set<uint32_t> share;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    if (PreferredOwner(members, p) == node) share.insert(p);
  }
  return share;
}

std::set<uint32_t> All() {
  std::set<uint32_t> all;
  for (uint32_t p = 0; p < kPartitions; ++p) all.insert(p);
  return all;
}

}  // namespace

TEST_CASE("rendezvous: a joining member takes partitions only from the others", "[leases]") {
  const std::vector<std::string> three = {"a", "b", "c"};
  const std::vector<std::string> four = {"a", "b", "c", "d"};
  std::map<std::string, int> share;
  for (uint32_t p = 0; p < 1024; ++p) {
    const std::string before = PreferredOwner(three, p);
    const std::string after = PreferredOwner(four, p);
    ++share[before];
    if (after != before) CHECK(after == "d");  // nothing moves between the old members
  }
  for (const auto& [member, count] : share) {
    INFO(member << " " << count);
    CHECK(count > 1024 / 3 - 80);  // about a third each
    CHECK(count < 1024 / 3 + 80);
  }
  CHECK(PreferredOwner({}, 3).empty());
  CHECK(PreferredOwner({"b", "a"}, 7) == PreferredOwner({"a", "b"}, 7));  // order-independent
}

TEST_CASE("leases: two nodes split the partitions, a cut-off node's share moves after the lease",
          "[leases]") {
  NatsCluster cluster(3);
  REQUIRE(cluster.ok());

  auto a = std::make_unique<LeaseNode>(cluster, "node-a");
  // Alone, a takes every partition.
  CHECK(WaitFor([&] { return a->Working() == All(); }, std::chrono::seconds(20)).count() >= 0);

  // b joins: a hands over b's share (released, so b takes it within a round or two).
  auto b = std::make_unique<LeaseNode>(cluster, "node-b");
  const std::set<uint32_t> b_share = PreferredSet({"node-a", "node-b"}, "node-b");
  REQUIRE(!b_share.empty());
  REQUIRE(b_share.size() < kPartitions);
  const auto handover = WaitFor(
      [&] {
        std::set<uint32_t> in_a = a->Working();
        std::set<uint32_t> in_b = b->Working();
        std::set<uint32_t> both;
        std::set_intersection(in_a.begin(), in_a.end(), in_b.begin(), in_b.end(),
                              std::inserter(both, both.end()));
        return in_b == b_share && both.empty() && in_a.size() + in_b.size() == kPartitions;
      },
      std::chrono::seconds(20));
  INFO("handover took " << handover.count() << " ms");
  CHECK(handover.count() >= 0);
  // Never two owners at once: at every moment sampled during the split, no partition was in
  // both nodes' working sets (checked above at the end); the callbacks never doubled.
  // A partition's revision only grows from one owner to the next.
  {
    std::lock_guard lock_a(a->mu);
    std::lock_guard lock_b(b->mu);
    for (uint32_t p : b_share) CHECK(b->revisions[p] > a->revisions[p]);
  }

  // b is cut off from NATS (as a crash looks to the others): it stops owning within a round
  // or so, and a takes b's share once b's leases and membership expire.
  const auto cut = SteadyClock::now();
  natsConnection_Close(b->session->connection());
  CHECK(WaitFor([&] { return b->Working().empty(); }, std::chrono::seconds(10)).count() >= 0);
  const auto takeover = WaitFor([&] { return a->Working() == All(); }, std::chrono::seconds(20));
  const auto since_cut =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - cut).count();
  INFO("takeover " << since_cut << " ms after the cut, lease " << kLeaseMs << " ms");
  REQUIRE(takeover.count() >= 0);
  // The lease expires kLeaseMs after b's last renewal (at most one round before the cut);
  // a notices on its next round and JetStream expires on its own timer: allow 3 leases.
  CHECK(since_cut < 3 * kLeaseMs + 1000);
  b.reset();  // its destructor's release fails quietly: the connection is closed

  // a leaves cleanly: its leases are free at once (released, not expired) and a newcomer
  // takes everything within a couple of rounds, well before a lease could expire.
  a.reset();
  auto c = std::make_unique<LeaseNode>(cluster, "node-c");
  const auto fresh = WaitFor([&] { return c->Working() == All(); }, std::chrono::seconds(20));
  INFO("a newcomer after a clean leave took everything in " << fresh.count() << " ms");
  CHECK(fresh.count() >= 0);
  std::lock_guard lock(c->mu);
  CHECK(c->double_acquires == 0);
  CHECK(c->unknown_losses == 0);
}

TEST_CASE("leases: a node restarted under the same name takes its partitions back at once",
          "[leases]") {
  NatsCluster cluster(3);
  REQUIRE(cluster.ok());
  auto a = std::make_unique<LeaseNode>(cluster, "node-a");
  REQUIRE(WaitFor([&] { return a->Working() == All(); }, std::chrono::seconds(20)).count() >= 0);
  // A crash: the connection goes, nothing is released.
  natsConnection_Close(a->session->connection());
  a.reset();
  auto again = std::make_unique<LeaseNode>(cluster, "node-a");
  const auto back = WaitFor([&] { return again->Working() == All(); }, std::chrono::seconds(20));
  INFO("back in " << back.count() << " ms (lease " << kLeaseMs << " ms)");
  REQUIRE(back.count() >= 0);
  CHECK(back.count() < kLeaseMs);  // its own name on the keys: no wait for the expiry
}
