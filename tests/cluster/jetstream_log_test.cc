// The event log in NATS JetStream (server/cluster/jetstream_log) against a real 3-server NATS
// cluster with JetStream, replicas 3, started by the test on loopback (tests/support/nats_cluster).
#include "server/cluster/jetstream_log.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "tests/support/nats_cluster.h"
#include "tests/support/server_harness.h"

using rta::cluster::JetStreamLogOptions;
using rta::cluster::OpenJetStreamLog;
using rta::storage::EventLog;
using rta::storage::Lsn;
using rta::testing::NatsCluster;

namespace {

JetStreamLogOptions OptionsFor(const NatsCluster& cluster, const std::string& writer = "a") {
  JetStreamLogOptions options;
  options.servers = cluster.urls();
  options.stream = "RTA_TEST";
  options.subject = "rta.test.0";
  options.writer_id = writer;
  options.connect_timeout_ms = 30'000;  // a new cluster elects its JetStream leader first
  options.publish_timeout_ms = 2000;
  return options;
}

std::unique_ptr<EventLog> OpenOrFail(const JetStreamLogOptions& options,
                                     rta::storage::OpenReport* report = nullptr) {
  std::string error;
  rta::storage::OpenReport ignored;
  auto log = OpenJetStreamLog(options, report != nullptr ? report : &ignored, &error);
  INFO(error);
  REQUIRE(log != nullptr);
  return log;
}

// Waits until `lsn` is durable; false if the log says it never will be, or after 30 s.
bool Durable(EventLog& log, Lsn lsn) {
  auto promise = std::make_shared<std::promise<bool>>();
  auto future = promise->get_future();
  log.WhenDurable(lsn, [promise](bool ok) { promise->set_value(ok); });
  return future.wait_for(std::chrono::seconds(30)) == std::future_status::ready && future.get();
}

std::string RecordText(Lsn lsn) {
  return "record " + std::to_string(lsn) + std::string(lsn % 97, 'x');
}

// Every record from `from` on, as a restart reads them: a fresh log on the subject (ReadFrom
// is for a log that has not appended yet).
std::vector<std::pair<Lsn, std::string>> ReadAll(const JetStreamLogOptions& options, Lsn from) {
  auto reader = OpenOrFail(options);
  std::vector<std::pair<Lsn, std::string>> out;
  std::string why;
  const bool read = reader->ReadFrom(
      from,
      [&](Lsn lsn, std::string_view record) {
        out.emplace_back(lsn, std::string(record));
        return true;
      },
      &why);
  INFO(why);
  REQUIRE(read);
  return out;
}

}  // namespace

TEST_CASE(
    "JetStream log: appended records are durable once stored, read back in order, and "
    "their Lsns go on after a reopen",
    "[cluster][jetstream]") {
  NatsCluster cluster;
  REQUIRE(cluster.ok());
  const auto options = OptionsFor(cluster);
  {
    auto log = OpenOrFail(options);
    for (Lsn expected = 1; expected <= 300; ++expected) {
      Lsn lsn = 0;
      std::string why;
      REQUIRE(log->Append(RecordText(expected), &lsn, &why));
      REQUIRE(lsn == expected);
    }
    CHECK(Durable(*log, 300));
    CHECK(log->durable_lsn() == 300);
    CHECK(log->health().writable);
    // Group commit: fewer publishes than records.
    CHECK(log->stats().writes < 300);
  }
  rta::storage::OpenReport report;
  auto again = OpenOrFail(options, &report);
  CHECK(report.last_lsn == 300);
  const auto all = ReadAll(options, 1);
  REQUIRE(all.size() == 300);
  for (Lsn i = 1; i <= 300; ++i) {
    CHECK(all[i - 1].first == i);
    CHECK(all[i - 1].second == RecordText(i));
  }
  CHECK(ReadAll(options, 251).size() == 50);
  Lsn lsn = 0;
  REQUIRE(again->Append("after the reopen", &lsn, nullptr));
  CHECK(lsn == 301);
  CHECK(Durable(*again, 301));
}

TEST_CASE("JetStream log: one NATS server killed mid-stream, appends keep becoming durable",
          "[cluster][jetstream]") {
  NatsCluster cluster;
  REQUIRE(cluster.ok());
  const auto options = OptionsFor(cluster);
  auto log = OpenOrFail(options);
  std::atomic<bool> stop{false};
  std::atomic<Lsn> appended{0};
  std::thread writer([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (Lsn i = 1; i <= 20'000 && !stop.load() && std::chrono::steady_clock::now() < deadline;
         ++i) {
      if (log->AppendAdmitted(RecordText(i)) == 0) break;
      appended.store(i);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // The first server is the one the log most likely connected to: its connection moves to
  // another, the stream keeps its quorum of two.
  cluster.Kill(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  writer.join();
  INFO("appended " << appended.load() << ", health " << log->health().message);
  REQUIRE(appended.load() > 0);
  CHECK(Durable(*log, appended.load()));
  const auto all = ReadAll(options, 1);
  CHECK(all.size() == appended.load());
  CHECK(all.back().first == appended.load());
}

TEST_CASE("JetStream log: a second writer on the subject fences the first",
          "[cluster][jetstream]") {
  NatsCluster cluster;
  REQUIRE(cluster.ok());
  auto first = OpenOrFail(OptionsFor(cluster, "a"));
  Lsn lsn = 0;
  REQUIRE(first->Append("from a", &lsn, nullptr));
  REQUIRE(Durable(*first, lsn));
  // A second node takes the subject over (a lease moved, later): its Lsns go on from a's.
  auto second = OpenOrFail(OptionsFor(cluster, "b"));
  REQUIRE(second->Append("from b", &lsn, nullptr));
  CHECK(lsn == 2);
  REQUIRE(Durable(*second, 2));
  // The first writer does not know yet; its next record is refused by JetStream, and it stops.
  Lsn stale = 0;
  REQUIRE(first->Append("stale a", &stale, nullptr));
  REQUIRE(rta::testing::WaitFor([&] { return !first->health().writable; }));
  CHECK_THAT(first->health().message, Catch::Contains("another writer"));
  std::string why;
  CHECK_FALSE(first->Append("refused", &lsn, &why));
  const auto all = ReadAll(OptionsFor(cluster, "reader"), 1);
  REQUIRE(all.size() == 2);
  CHECK(all[1].second == "from b");
  // Its waiter learns at close that the record was never stored.
  std::promise<bool> answered;
  first->WhenDurable(stale, [&](bool ok) { answered.set_value(ok); });
  first.reset();
  CHECK(answered.get_future().get() == false);
}

TEST_CASE(
    "JetStream log: two writers appending at once after the same message: one is stored and "
    "the other fenced in every round (no fork)",
    "[cluster][jetstream]") {
  // The takeover race of a partial chain (a paused owner and its successor both continue the
  // same record). The NATS server checks Nats-Expected-Last-Subject-Sequence on a replicated
  // stream only before it proposes a message (nats-io/nats-server#4320), so both could be
  // stored; the log's chain-position message id makes the second one a duplicate when the
  // replicas apply it.
  NatsCluster cluster;
  REQUIRE(cluster.ok());
  {
    auto seed = OpenOrFail(OptionsFor(cluster, "seed"));
    Lsn lsn = 0;
    REQUIRE(seed->Append("seed", &lsn, nullptr));
    REQUIRE(Durable(*seed, lsn));
  }
  constexpr int kRounds = 30;
  int fenced = 0;
  for (int round = 0; round < kRounds; ++round) {
    auto a = OpenOrFail(OptionsFor(cluster, "a" + std::to_string(round)));
    auto b = OpenOrFail(OptionsFor(cluster, "b" + std::to_string(round)));
    // Both opened at the same end of the subject; both append at once.
    std::atomic<int> ready{0};
    auto append = [&](EventLog& log, const std::string& text) {
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      Lsn lsn = 0;
      return log.Append(text, &lsn, nullptr) && Durable(log, lsn);
    };
    auto stored_a =
        std::async(std::launch::async, append, std::ref(*a), "a" + std::to_string(round));
    auto stored_b =
        std::async(std::launch::async, append, std::ref(*b), "b" + std::to_string(round));
    const int stored = int{stored_a.get()} + int{stored_b.get()};
    INFO("round " << round);
    REQUIRE(stored == 1);
    fenced += int{!a->health().writable} + int{!b->health().writable};
  }
  CHECK(fenced == kRounds);
  // The subject is one chain: the seed and one record per round, Lsns one after another.
  const auto all = ReadAll(OptionsFor(cluster, "reader"), 1);
  REQUIRE(all.size() == 1 + kRounds);
  for (size_t i = 0; i < all.size(); ++i) CHECK(all[i].first == i + 1);
}

TEST_CASE(
    "JetStream log: TruncateBefore purges what a checkpoint covers and keeps the last "
    "message",
    "[cluster][jetstream]") {
  NatsCluster cluster;
  REQUIRE(cluster.ok());
  const auto options = OptionsFor(cluster);
  auto log = OpenOrFail(options);
  // Three groups, each made durable before the next: three messages.
  for (Lsn group = 0; group < 3; ++group) {
    Lsn lsn = 0;
    for (int i = 0; i < 10; ++i)
      REQUIRE(log->Append(RecordText(group * 10 + i + 1), &lsn, nullptr));
    REQUIRE(Durable(*log, lsn));
  }
  log->TruncateBefore(21);  // the first two groups are covered
  CHECK(ReadAll(options, 1).front().first == 21);
  log->TruncateBefore(1000);  // past the end: the last message stays
  auto all = ReadAll(options, 1);
  REQUIRE(!all.empty());
  CHECK(all.back().first == 30);
  log.reset();
  rta::storage::OpenReport report;
  auto again = OpenOrFail(options, &report);
  CHECK(report.last_lsn == 30);
}
