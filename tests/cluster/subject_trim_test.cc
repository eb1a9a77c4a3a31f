// Finding a subject's first message stored since a time and purging below it
// (server/cluster/subject_trim), against a real 3-server NATS cluster (JetStream, replicas 3).
#include "server/cluster/subject_trim.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "server/cluster/jetstream_log.h"
#include "tests/support/nats_cluster.h"

using rta::cluster::DirectGetNext;
using rta::cluster::FirstStoredSince;
using rta::cluster::NatsMsgPtr;
using rta::cluster::NatsSession;
using rta::cluster::WallClockMs;

namespace {

constexpr char kStream[] = "RTA_TRIM_TEST";

// Publishes one message on `subject`; its stream sequence.
uint64_t Publish(jsCtx* js, const std::string& subject) {
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_Publish(&ack, js, subject.c_str(), "x", 1, nullptr, &code);
  REQUIRE(status == NATS_OK);
  const uint64_t sequence = ack->Sequence;
  jsPubAck_Destroy(ack);
  return sequence;
}

// Messages on `subject` now, as the stream's leader counts them.
uint64_t MessagesOn(jsCtx* js, const std::string& subject) {
  jsOptions options;
  jsOptions_Init(&options);
  options.Stream.Info.SubjectsFilter = subject.c_str();
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  REQUIRE(js_GetStreamInfo(&info, js, kStream, &options, &code) == NATS_OK);
  uint64_t messages = 0;
  if (info->State.Subjects != nullptr) {
    for (int i = 0; i < info->State.Subjects->Count; ++i) {
      messages += info->State.Subjects->List[i].Msgs;
    }
  }
  jsStreamInfo_Destroy(info);
  return messages;
}

}  // namespace

TEST_CASE("subject trim: the first message stored since a time, and a purge below it",
          "[cluster]") {
  rta::testing::NatsCluster nats;
  REQUIRE(nats.ok());
  std::string error;
  auto session = NatsSession::Connect(nats.urls(), 5000, &error);
  INFO(error);
  REQUIRE(session != nullptr);
  jsCtx* js = session->js();
  REQUIRE(rta::cluster::EnsureStream(js, kStream, "trim.>", 3, 120'000, 30'000, &error));

  // Old messages on trim.a between others on trim.b, then a pause, then new ones.
  std::vector<uint64_t> old_a, new_a;
  for (int i = 0; i < 6; ++i) {
    old_a.push_back(Publish(js, "trim.a"));
    Publish(js, "trim.b");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int64_t cut_ms = WallClockMs();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = 0; i < 4; ++i) {
    Publish(js, "trim.b");
    new_a.push_back(Publish(js, "trim.a"));
  }
  const uint64_t last = new_a.back();

  int reads = 0;
  // One read; a replica that answers "none" for a message known to be there is behind its
  // leader: asked again (up to 2 s), so that the searches below are exact.
  auto get = [&](uint64_t sequence, NatsMsgPtr* msg) {
    ++reads;
    for (int attempt = 0; attempt < 40; ++attempt) {
      const natsStatus status = DirectGetNext(js, kStream, "trim.a", sequence, msg);
      if (status == NATS_OK) return true;
      if (status != NATS_NOT_FOUND) return false;
      if (sequence > last) return true;  // none, rightly
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  // The message on trim.a that a read from `sequence` finds.
  auto next_on_a = [&](uint64_t sequence) -> uint64_t {
    NatsMsgPtr msg;
    if (!get(sequence, &msg) || msg == nullptr) return 0;
    return natsMsg_GetSequence(msg.get());
  };
  uint64_t first = 0;
  REQUIRE(FirstStoredSince(cut_ms, last, get, &first));
  CHECK(reads <= 6);  // log2(20) + 1
  // Below `first` every trim.a message is old; the next one from it is the first new one.
  CHECK(first > old_a.back());
  CHECK(next_on_a(first) == new_a.front());
  REQUIRE(FirstStoredSince(0, last, get, &first));
  CHECK(next_on_a(first) == old_a.front());
  REQUIRE(FirstStoredSince(WallClockMs() + 60'000, last, get, &first));
  CHECK(first == last + 1);  // none
  // Searching only up to an old message: none of them is new enough.
  REQUIRE(FirstStoredSince(cut_ms, old_a.back(), get, &first));
  CHECK(first == old_a.back() + 1);

  // The purge takes trim.a's old messages and nothing else.
  CHECK(MessagesOn(js, "trim.a") == 10);
  CHECK(MessagesOn(js, "trim.b") == 10);
  REQUIRE(FirstStoredSince(cut_ms, last, get, &first));
  REQUIRE(rta::cluster::PurgeSubjectBelow(js, kStream, "trim.a", first, &error));
  CHECK(MessagesOn(js, "trim.a") == 4);
  CHECK(MessagesOn(js, "trim.b") == 10);
  NatsMsgPtr msg;
  REQUIRE(get(1, &msg));
  REQUIRE(msg != nullptr);
  CHECK(natsMsg_GetSequence(msg.get()) == new_a.front());  // reads skip what was purged
  // A purge that fails says why.
  CHECK_FALSE(rta::cluster::PurgeSubjectBelow(js, "RTA_NO_SUCH_STREAM", "trim.a", 5, &error));
  CHECK(error.find("RTA_NO_SUCH_STREAM") != std::string::npos);
}
