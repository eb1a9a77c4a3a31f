// Copying a peer's history store (server/cluster/history_copy): a real NATS server on loopback,
// a real RocksDB store served by a HistoryExporter, copied with CopyPeerHistory and opened
// again; every request a copier can get wrong is refused with a message naming it.
#include "server/cluster/history_copy.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server/storage/rollup_store.h"
#include "tests/support/nats_cluster.h"
#include "tests/support/temp_dir.h"

using rta::cluster::CopyPeerHistory;
using rta::cluster::HistoryCopyReport;
using rta::cluster::HistoryExporter;
using rta::cluster::HistoryOffer;
using rta::cluster::NatsMsgPtr;
using rta::cluster::NatsSession;
using rta::storage::Resolution;
using rta::storage::RollupCell;
using rta::storage::RollupStore;
using rta::testing::NatsCluster;
using rta::testing::TempDir;

namespace {

constexpr int64_t kDay = 86'400;
// A fixed "now" for retention, a few days after the cells below.
constexpr int64_t kNow = 1'796'000'000;

std::unique_ptr<RollupStore> OpenStore(const std::string& dir) {
  std::string error;
  auto store = RollupStore::Open(
      dir, {}, [] { return kNow; }, &error);
  INFO(error);
  REQUIRE(store != nullptr);
  return store;
}

// Every day cell of `segment` as bucket -> events.
std::map<int64_t, uint64_t> Days(const RollupStore& store, const std::string& segment) {
  std::map<int64_t, uint64_t> days;
  std::string error;
  REQUIRE(store.Scan(
      Resolution::kDay, segment, 0, kNow + kDay,
      [&](int64_t bucket, const RollupCell& cell) { days[bucket] = cell.counters.events; },
      &error));
  return days;
}

// One request to `node`'s exporter; its reply's bytes.
std::string Ask(NatsSession& session, const std::string& node, const nlohmann::json& request) {
  const std::string body = request.dump();
  natsMsg* raw = nullptr;
  const std::string subject = std::string(rta::cluster::kHistoryCopyPrefix) + ".export." + node;
  REQUIRE(natsConnection_Request(&raw, session.connection(), subject.c_str(), body.data(),
                                 static_cast<int>(body.size()), 5000) == NATS_OK);
  NatsMsgPtr reply(raw);
  return std::string(natsMsg_GetData(raw), static_cast<size_t>(natsMsg_GetDataLength(raw)));
}

// A connection to a one-server NATS (the copies use core NATS only).
std::unique_ptr<NatsSession> Connect(const NatsCluster& nats) {
  REQUIRE(nats.ok());
  std::string error;
  auto session = NatsSession::Connect(nats.urls(), 5000, &error);
  INFO(error);
  REQUIRE(session != nullptr);
  return session;
}

struct Peer {
  TempDir dir;
  std::unique_ptr<RollupStore> store;
  std::unique_ptr<HistoryExporter> exporter;
  // Set before the exporter starts: its handlers read them on nats.c's threads.
  const uint64_t since, next_sequence = 100;

  Peer(NatsSession* session, const std::string& node, std::chrono::seconds idle_limit,
       uint64_t since_sequence = 1)
      : since(since_sequence) {
    store = OpenStore(dir.path() + "/history");
    std::vector<rta::storage::RollupWrite> writes;
    for (int64_t d = 0; d < 5; ++d) {
      RollupCell cell;
      cell.counters.events = 10 + static_cast<uint64_t>(d);
      writes.push_back({Resolution::kDay, kNow - (d + 1) * kDay, "", cell});
      cell.counters.events = 1;
      writes.push_back({Resolution::kDay, kNow - (d + 1) * kDay, "country=DE", cell});
    }
    std::string error;
    REQUIRE(store->Write(writes, {{"cluster_next_sequence", rta::storage::MetaU64(100)}}, false,
                         &error));
    HistoryExporter::Source source;
    source.offer = [this, node] { return HistoryOffer{node, since, next_sequence}; };
    source.checkpoint = [this](const std::string& into, std::string* why) {
      return store->Checkpoint(into, why);
    };
    exporter = HistoryExporter::Start(session, node, dir.path() + "/history", std::move(source),
                                      &error, idle_limit);
    INFO(error);
    REQUIRE(exporter != nullptr);
  }
};

}  // namespace

TEST_CASE("history copy: a peer's store is copied whole and opens with the same cells",
          "[cluster][history_copy]") {
  NatsCluster nats(1);
  auto session = Connect(nats);
  std::string error;
  Peer whole(session.get(), "whole", std::chrono::seconds(60));
  // A second peer whose history starts later: not the one to copy when the first has more.
  Peer late(session.get(), "late", std::chrono::seconds(60), 50);

  TempDir mine;
  const std::string into = mine.path() + "/copy";
  HistoryCopyReport report;
  REQUIRE(CopyPeerHistory(session.get(), "me", 40, into, std::chrono::milliseconds(500), &report,
                          &error));
  INFO(error);
  CHECK(report.peer == "whole");
  CHECK(report.peer_since == 1);
  CHECK(report.files > 0);
  CHECK(report.bytes > 0);
  CHECK(whole.exporter->copies_opened() == 1);
  CHECK(whole.exporter->bytes_served() == report.bytes);
  CHECK(late.exporter->copies_opened() == 0);
  {
    auto copy = OpenStore(into);
    REQUIRE(copy->VerifyChecksums(&error));
    CHECK(Days(*copy, "") == Days(*whole.store, ""));
    CHECK(Days(*copy, "country=DE") == Days(*whole.store, "country=DE"));
    CHECK(Days(*copy, "").size() == 5);
    std::string value;
    bool found = false;
    REQUIRE(copy->GetMeta("cluster_next_sequence", &value, &found, &error));
    CHECK(found);
    CHECK(value == rta::storage::MetaU64(100));
  }
  // The copy was closed: its checkpoint is gone from the peer.
  CHECK_FALSE(std::filesystem::exists(whole.dir.path() + "/history.export-1"));

  // Nobody has what the stream lost from 150 on (both read on at 100), or from 0 (the offers'
  // own name is skipped: "whole" asking finds only "late", whose history starts at 50).
  HistoryCopyReport none;
  REQUIRE(CopyPeerHistory(session.get(), "me", 150, mine.path() + "/none",
                          std::chrono::milliseconds(500), &none, &error));
  CHECK(none.peer.empty());
  REQUIRE(CopyPeerHistory(session.get(), "whole", 40, mine.path() + "/none",
                          std::chrono::milliseconds(500), &none, &error));
  CHECK(none.peer.empty());
  CHECK_FALSE(std::filesystem::exists(mine.path() + "/none"));
}

TEST_CASE("history copy: bad requests are refused naming what was wrong",
          "[cluster][history_copy]") {
  NatsCluster nats(1);
  auto session = Connect(nats);
  std::string error;
  Peer peer(session.get(), "peer", std::chrono::seconds(1));

  CHECK(Ask(*session, "peer", {{"op", "drop"}}).rfind("Eunknown request", 0) == 0);
  CHECK(Ask(*session, "peer", {{"op", "read"}, {"id", 7}, {"file", "CURRENT"}, {"length", 1}}) ==
        "Eno open copy 7");

  const auto opened = nlohmann::json::parse(Ask(*session, "peer", {{"op", "open"}}));
  REQUIRE(opened.contains("id"));
  const uint64_t id = opened["id"];
  std::string name;
  uint64_t size = 0;
  for (const auto& file : opened["files"]) {
    if (file["size"].get<uint64_t>() > 0) {
      name = file["name"];
      size = file["size"];
    }
  }
  REQUIRE(size > 0);
  auto read = [&](const std::string& file, uint64_t offset, uint64_t length) {
    return Ask(
        *session, "peer",
        {{"op", "read"}, {"id", id}, {"file", file}, {"offset", offset}, {"length", length}});
  };
  CHECK(read(name, 0, size).size() == size + 1);
  CHECK(read(name, 0, size)[0] == 'D');
  // Only the checkpoint's own files, by name.
  CHECK(read("../history/CURRENT", 0, 1) ==
        "Ecopy " + std::to_string(id) + " has no file ../history/CURRENT");
  CHECK(read(name, 0, size + 1).rfind("Ebad range 0+" + std::to_string(size + 1), 0) == 0);
  CHECK(read(name, size, 1).rfind("Ebad range", 0) == 0);
  CHECK(read(name, 0, 0).rfind("Ebad range", 0) == 0);
  CHECK(read(name, 0, rta::cluster::kHistoryChunkBytes + 1).rfind("Ebad range", 0) == 0);

  // At most kMaxCopies checkpoints at once.
  std::vector<uint64_t> more;
  for (size_t i = 1; i < HistoryExporter::kMaxCopies; ++i) {
    const auto again = nlohmann::json::parse(Ask(*session, "peer", {{"op", "open"}}));
    REQUIRE(again.contains("id"));
    more.push_back(again["id"]);
  }
  const auto busy = nlohmann::json::parse(Ask(*session, "peer", {{"op", "open"}}));
  CHECK(busy.value("error", "").rfind("busy", 0) == 0);
  CHECK_FALSE(busy.contains("id"));

  // A copy nobody reads for idle_limit (1 s here) is dropped with its checkpoint by the sweeper
  // (every 5 s): a copier that died does not pin the peer's files.
  const std::string checkpoint = peer.dir.path() + "/history.export-" + std::to_string(id);
  CHECK(std::filesystem::exists(checkpoint));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::filesystem::exists(checkpoint) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK_FALSE(std::filesystem::exists(checkpoint));
  CHECK(read(name, 0, 1) == "Eno open copy " + std::to_string(id));
  // And a new copy can be opened again.
  CHECK(nlohmann::json::parse(Ask(*session, "peer", {{"op", "open"}})).contains("id"));
}
