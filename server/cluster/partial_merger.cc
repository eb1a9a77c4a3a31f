#include "server/cluster/partial_merger.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "server/cluster/jetstream_log.h"

namespace rta::cluster {
namespace {

constexpr int kMergerPollMs = 50;                   // caught up: how often to look for new records
constexpr int kPartialDuplicateWindowMs = 120'000;  // as the owners' partial logs create it

}  // namespace

std::unique_ptr<PartialMerger> PartialMerger::Start(NatsSession* session,
                                                    PartialMergerOptions options,
                                                    std::string* error) {
  if (!EnsureStream(session->js(), options.stream, options.prefix + ".>", options.replicas,
                    kPartialDuplicateWindowMs, options.connect_timeout_ms, error)) {
    return nullptr;
  }
  uint64_t last = 0;
  if (!StreamLastSequence(session, options.stream, &last, error)) return nullptr;
  return std::unique_ptr<PartialMerger>(new PartialMerger(session, std::move(options), last));
}

PartialMerger::PartialMerger(NatsSession* session, PartialMergerOptions options,
                             uint64_t start_sequence)
    : session_(session), options_(std::move(options)), start_sequence_(start_sequence) {
  thread_ = std::thread([this] { Loop(); });
}

PartialMerger::~PartialMerger() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  drained_.notify_all();
  thread_.join();
}

size_t PartialMerger::Drain(const std::function<void(const MergedPartial&)>& merge) {
  std::deque<Queued> ready;
  {
    std::lock_guard lock(mu_);
    ready.swap(queue_);
    queued_bytes_ = 0;
  }
  drained_.notify_all();
  for (const Queued& queued : ready) {
    MergedPartial partial;
    partial.partition = queued.partition;
    DecodePartialRecord(queued.bytes, &partial.record);  // checked when queued
    merge(partial);
  }
  return ready.size();
}

void PartialMerger::Loop() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    std::string why;
    if (Follow(&why)) return;
    restarts_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_restart) options_.on_restart(why);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// Reads the stream message by message with direct gets of "the next message on rta.partial.>
// at sequence n or later", from the one after the last read: true when stopping, false when a
// read failed in a way worth logging (the loop then starts again from the same place). Records
// that owners trimmed are skipped by the gets themselves, so a node that starts reads only what
// the chains still hold (at most two hours of records, partition_owner.h), however long the
// stream's sequences have grown.
//
// Why not a consumer: an ordered push consumer is the natural reader, and the first version used
// one; but ordered consumers were seen to stop delivering after a NATS server was killed,
// without an error or a reset from nats.c 3.4 (DirectGetNext in nats_session.h), and a merger
// that stops leaves its node's numbers behind for good. Partials are few (one per busy
// partition per exchange interval), so one request per record costs little, holds no state on
// any server, and a server's loss only fails the requests it was answering, which are retried.
// A replica answers in stream order (it applies the stream's log in order), so a get never
// skips a record that a later one follows.
bool PartialMerger::Follow(std::string* why) {
  const std::string all = options_.prefix + ".>";
  uint64_t next = sequence() + 1;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      drained_.wait(lock, [&] { return stopping_ || queued_bytes_ < options_.max_queued_bytes; });
      if (stopping_) return true;
    }
    NatsMsgPtr msg;
    const natsStatus status = DirectGetNext(session_->js(), options_.stream, all, next, &msg);
    if (status == NATS_OK) {
      const uint64_t read = natsMsg_GetSequence(msg.get());
      Receive(msg.get(), read);
      if (options_.tap != nullptr) options_.tap->Push(next, read, std::move(msg));
      next = read + 1;
    } else if (status == NATS_NOT_FOUND) {
      // Caught up (with the replica that answered): wait a little.
      std::unique_lock lock(mu_);
      drained_.wait_for(lock, std::chrono::milliseconds(kMergerPollMs), [&] { return stopping_; });
    } else {
      *why = "reading " + options_.stream + " at sequence " + std::to_string(next) + ": " +
             DescribeNats(status);
      return false;
    }
  }
}

bool PartialMerger::Receive(natsMsg* msg, uint64_t sequence) {
  const std::string subject = natsMsg_GetSubject(msg);
  const size_t dot = subject.rfind('.');
  char* end = nullptr;
  const unsigned long partition = std::strtoul(subject.c_str() + dot + 1, &end, 10);
  bool ok = dot != std::string::npos && *end == '\0' && partition < (1u << 20);
  if (ok) {
    if (revisions_.size() <= partition) revisions_.resize(partition + 1, 0);
    ok = ForEachLogRecord(msg, [&](storage::Lsn, std::string_view bytes) {
      PartialRecord record;
      if (!DecodePartialRecord(bytes, &record)) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      // Merged all the same: the chain's fencing already ordered it after what it continues
      // (see the class comment); counted, because it means two nodes briefly both owned it.
      if (record.revision < revisions_[partition]) stale_.fetch_add(1, std::memory_order_relaxed);
      revisions_[partition] = std::max(revisions_[partition], record.revision);
      received_.fetch_add(1, std::memory_order_relaxed);
      if (record.delta.empty()) return true;  // a history part: ClusterHistory's
      // The rollups are ClusterHistory's (it reads the stream itself): the view keeps the rest.
      PartialRecord live = record;
      live.rollups = {};
      std::string queued = record.rollups.empty() ? std::string(bytes) : EncodePartialRecord(live);
      std::lock_guard lock(mu_);
      queued_bytes_ += queued.size();
      queue_.push_back({static_cast<uint32_t>(partition), std::move(queued)});
      return true;
    });
  }
  if (!ok) malformed_.fetch_add(1, std::memory_order_relaxed);
  sequence_.store(sequence, std::memory_order_release);
  return ok;
}

bool PartialMerger::StreamLastSequence(NatsSession* session, const std::string& stream,
                                       uint64_t* last, std::string* why) {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetStreamInfo(&info, session->js(), stream.c_str(), nullptr, &code);
  if (status != NATS_OK) {
    *why = "asking where " + stream + " ends: " + DescribeNats(status, code);
    return false;
  }
  *last = info->State.LastSeq;
  jsStreamInfo_Destroy(info);
  return true;
}

}  // namespace rta::cluster
