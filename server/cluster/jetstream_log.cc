#include "server/cluster/jetstream_log.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "server/cluster/nats_session.h"
#include "server/storage/durable_waiters.h"

namespace rta::cluster {
namespace {

using storage::Lsn;
using Clock = std::chrono::steady_clock;

constexpr char kFirstLsnHeader[] = "Rta-First-Lsn";
constexpr char kRecordsHeader[] = "Rta-Records";
// Names the writer of a fenced-mode message (WriterToken() and its first Lsn): the message id
// names the chain position instead, so this is how a writer tells its own stored message from
// another writer's at the same position.
constexpr char kWriterHeader[] = "Rta-Writer";
// Room left in a message for its headers (ours and JetStream's), out of the server's
// max_payload.
constexpr int kHeaderRoom = 1024;
constexpr size_t kFrameBytes = 4;  // a record's length, little-endian, before its bytes
// A read that gets no message for this long fails (the cluster lost its quorum, say).
constexpr auto kReadLimit = std::chrono::seconds(30);

// The Lsn range a message of this log holds, from its headers; false if they are not ours.
bool ReadHeaders(natsMsg* msg, Lsn* first, uint64_t* count) {
  const char* first_text = nullptr;
  const char* count_text = nullptr;
  if (natsMsgHeader_Get(msg, kFirstLsnHeader, &first_text) != NATS_OK ||
      natsMsgHeader_Get(msg, kRecordsHeader, &count_text) != NATS_OK) {
    return false;
  }
  char* end = nullptr;
  *first = std::strtoull(first_text, &end, 10);
  if (*end != '\0' || *first == 0) return false;
  *count = std::strtoull(count_text, &end, 10);
  return *end == '\0' && *count > 0;
}

// Calls visit(lsn, record) for each record of a message's payload; false if the framing is bad.
bool ForEachRecord(natsMsg* msg, Lsn first, uint64_t count,
                   const std::function<bool(Lsn, std::string_view)>& visit, bool* stopped) {
  const char* data = natsMsg_GetData(msg);
  const size_t size = static_cast<size_t>(natsMsg_GetDataLength(msg));
  size_t at = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (size - at < kFrameBytes) return false;
    uint32_t length = 0;
    for (size_t b = 0; b < kFrameBytes; ++b) {
      length |= static_cast<uint32_t>(static_cast<uint8_t>(data[at + b])) << (8 * b);
    }
    at += kFrameBytes;
    if (size - at < length) return false;
    if (!visit(first + i, std::string_view(data + at, length))) {
      *stopped = true;
      return true;
    }
    at += length;
  }
  return at == size;
}

// `writer_id` and 64 random bits: unique to one open log, also when two of them share a writer id
// (two runs of one partition owner).
std::string WriterToken(const std::string& writer_id) {
  std::random_device random;  // the kernel's CSPRNG in libstdc++
  const uint64_t incarnation = (uint64_t{random()} << 32) | random();
  return writer_id + "/" + std::to_string(incarnation);
}

class JetStreamLog final : public storage::EventLog {
 public:
  JetStreamLog(JetStreamLogOptions options, std::unique_ptr<NatsSession> session, Lsn last_lsn,
               uint64_t last_sequence, Lsn last_first_lsn)
      : options_(std::move(options)),
        session_(std::move(session)),
        js_(session_->js()),
        max_message_bytes_(static_cast<size_t>(std::max<int64_t>(
            natsConnection_GetMaxPayload(session_->connection()) - kHeaderRoom, 4096))),
        subject_prefix_(options_.subject.substr(0, options_.subject.rfind('.'))),
        writer_token_(WriterToken(options_.writer_id)),
        next_lsn_(last_lsn + 1),
        waiters_(last_lsn),
        durable_lsn_(last_lsn),
        last_lsn_(last_lsn),
        last_sequence_(last_sequence) {
    // The subject's last message, read at open: a ReadFrom of its records starts there instead
    // of at the subject's first message (a partition owner reads the chain's end this way).
    if (last_sequence > 0) Remember(last_first_lsn, last_lsn, last_sequence);
    writer_ = std::thread([this] { WriterLoop(); });
  }

  ~JetStreamLog() override {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
      close_deadline_ = Clock::now() + std::chrono::milliseconds(options_.close_timeout_ms);
    }
    cv_.notify_all();
    writer_.join();
  }

  bool Append(std::string_view record, Lsn* lsn, std::string* why) override {
    return AppendRecord(record, /*admitted=*/false, lsn, why);
  }

  Lsn AppendAdmitted(std::string_view record) override {
    Lsn lsn = 0;
    return AppendRecord(record, /*admitted=*/true, &lsn, nullptr) ? lsn : 0;
  }

  Lsn durable_lsn() const override { return durable_lsn_.load(std::memory_order_acquire); }
  Lsn last_lsn() const override { return last_lsn_.load(std::memory_order_acquire); }

  void WhenDurable(Lsn lsn, std::function<void(bool)> done) override {
    waiters_.Add(lsn, std::move(done));
  }

  // Reads the subject's messages as they stand now (also while records are appended: the
  // history's writer catches up this way), starting at the message that holds `from` when this
  // log knows it, else at the subject's first message. One direct get per message (nats_session.h
  // says why not a consumer); a get that fails or finds nothing before the subject's end (a
  // follower behind its leader, a server gone, an election) is retried until kReadLimit passes
  // without progress.
  bool ReadFrom(Lsn from, const std::function<bool(Lsn, std::string_view)>& visit,
                std::string* why) override {
    if (options_.split) return true;  // ingest mode: the partitions' owners read it
    uint64_t last_sequence = 0;
    if (!LastSequence(&last_sequence, why)) return false;
    uint64_t next = std::max<uint64_t>(1, StartSequence(from));
    auto last_progress = Clock::now();
    while (next <= last_sequence) {
      NatsMsgPtr msg;
      const natsStatus status = DirectGetNext(js_, options_.stream, options_.subject, next, &msg);
      if (status != NATS_OK) {
        if (Clock::now() - last_progress > kReadLimit) {
          if (why) {
            *why = "reading " + options_.subject + " made no progress for " +
                   std::to_string(
                       std::chrono::duration_cast<std::chrono::seconds>(kReadLimit).count()) +
                   " s at stream sequence " + std::to_string(next) + " of " +
                   std::to_string(last_sequence) + ": " + DescribeNats(status);
          }
          return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(options_.retry_interval_ms));
        continue;
      }
      last_progress = Clock::now();
      const uint64_t sequence = natsMsg_GetSequence(msg.get());
      Lsn first = 0;
      uint64_t count = 0;
      bool stopped = false;
      if (!ReadHeaders(msg.get(), &first, &count) ||
          !ForEachRecord(
              msg.get(), first, count,
              [&](Lsn lsn, std::string_view record) { return lsn < from || visit(lsn, record); },
              &stopped)) {
        if (why) {
          *why = "message " + std::to_string(sequence) + " of " + options_.subject +
                 " is not a record group of this log";
        }
        return false;
      }
      Remember(first, first + count - 1, sequence);
      if (stopped) return true;
      next = sequence + 1;
    }
    return true;
  }

  void TruncateBefore(Lsn lsn) override {
    if (!options_.purge_on_truncate || options_.split) return;
    uint64_t purge_below = 0;
    {
      std::lock_guard lock(index_mu_);
      // The last message always stays: it carries the Lsns across a restart.
      while (index_.size() > 1 && index_.front().last < lsn) {
        index_.pop_front();
        purge_below = index_.front().sequence;
      }
    }
    if (purge_below == 0) return;
    jsOptions options;
    jsOptions_Init(&options);
    options.Stream.Purge.Subject = options_.subject.c_str();
    options.Stream.Purge.Sequence = purge_below;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_PurgeStream(js_, options_.stream.c_str(), &options, &code) != NATS_OK) {
      purge_errors_.fetch_add(1, std::memory_order_relaxed);  // the next checkpoint retries
    }
  }

  storage::LogHealth health() const override {
    std::lock_guard lock(mu_);
    return {writable_, health_message_};
  }

  storage::LogStats stats() const override {
    storage::LogStats stats;
    stats.records_appended = records_appended_.load(std::memory_order_relaxed);
    stats.bytes_appended = bytes_appended_.load(std::memory_order_relaxed);
    stats.appends_refused = refused_.load(std::memory_order_relaxed);
    stats.bytes_written = bytes_written_.load(std::memory_order_relaxed);
    stats.writes = publishes_.load(std::memory_order_relaxed);
    stats.syncs = publishes_.load(std::memory_order_relaxed);
    stats.sync_nanos_sum = publish_nanos_.load(std::memory_order_relaxed);
    stats.write_errors = publish_errors_.load(std::memory_order_relaxed);
    stats.pending_bytes = pending_bytes_.load(std::memory_order_relaxed);
    std::lock_guard lock(index_mu_);
    stats.segments = index_.size();
    return stats;
  }

 private:
  struct Indexed {
    Lsn first;
    Lsn last;
    uint64_t sequence;
  };

  bool AppendRecord(std::string_view record, bool admitted, Lsn* lsn, std::string* why) {
    std::string refusal;
    if (record.size() + kFrameBytes > max_message_bytes_) {
      refusal = "record of " + std::to_string(record.size()) +
                " bytes over the NATS servers' max_payload (less " + std::to_string(kHeaderRoom) +
                " bytes of headers)";
    }
    {
      std::lock_guard lock(mu_);
      if (!refusal.empty()) {
        // too large: refused whatever the state
      } else if (closing_) {
        refusal = "the log is closing";
      } else if (admitted) {
        // Already counted by the caller (it checked health() just before).
      } else if (!writable_) {
        refusal = health_message_;
      } else if (pending_bytes_.load(std::memory_order_relaxed) + record.size() >
                 options_.max_pending_bytes) {
        refusal = "pending bytes over " + std::to_string(options_.max_pending_bytes) +
                  ": JetStream is behind";
      }
      if (refusal.empty()) {
        const Lsn assigned = next_lsn_++;
        pending_.emplace_back(record);
        pending_bytes_.fetch_add(record.size(), std::memory_order_relaxed);
        last_lsn_.store(assigned, std::memory_order_release);
        *lsn = assigned;
      }
    }
    if (!refusal.empty()) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      if (why) *why = std::move(refusal);
      return false;
    }
    records_appended_.fetch_add(1, std::memory_order_relaxed);
    bytes_appended_.fetch_add(record.size(), std::memory_order_relaxed);
    cv_.notify_all();
    return true;
  }

  // The stream sequence of the subject's last message now; 0 when it has none.
  bool LastSequence(uint64_t* sequence, std::string* why) {
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status =
        js_GetLastMsg(&raw, js_, options_.stream.c_str(), options_.subject.c_str(), nullptr, &code);
    if (status == NATS_OK) {
      *sequence = natsMsg_GetSequence(raw);
      natsMsg_Destroy(raw);
      return true;
    }
    if (code == JSNoMessageFoundErr) {
      *sequence = 0;
      return true;
    }
    if (why)
      *why = "cannot read the end of " + options_.subject + ": " + DescribeNats(status, code);
    return false;
  }

  // The stream sequence of the known message that holds `lsn`; 0 if this log does not know it.
  uint64_t StartSequence(Lsn lsn) {
    std::lock_guard lock(index_mu_);
    for (const Indexed& message : index_) {
      if (message.first <= lsn && lsn <= message.last) return message.sequence;
    }
    return 0;
  }

  void Remember(Lsn first, Lsn last, uint64_t sequence) {
    std::lock_guard lock(index_mu_);
    if (index_.empty() || index_.back().sequence < sequence)
      index_.push_back({first, last, sequence});
  }

  void SetHealth(bool writable, std::string message) {
    std::lock_guard lock(mu_);
    writable_ = writable;
    health_message_ = std::move(message);
  }

  // The writer thread: group commit, one JetStream message in flight.
  void WriterLoop() {
    for (;;) {
      std::string payload;
      std::vector<std::string> group;  // ingest mode: the records, unframed
      uint64_t count = 0;
      Lsn first = 0;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return closing_ || (!pending_.empty() && !fenced_); });
        if (pending_.empty() || fenced_ || (closing_ && Clock::now() >= close_deadline_)) break;
        first = durable_lsn_.load(std::memory_order_relaxed) + 1;
        size_t bytes = 0;
        while (!pending_.empty() && (count == 0 || bytes + kFrameBytes + pending_.front().size() <=
                                                       max_message_bytes_)) {
          std::string& record = pending_.front();
          bytes += kFrameBytes + record.size();
          pending_bytes_.fetch_sub(record.size(), std::memory_order_relaxed);
          if (options_.split) {
            group.push_back(std::move(record));
          } else {
            for (size_t b = 0; b < kFrameBytes; ++b) {
              payload.push_back(static_cast<char>((record.size() >> (8 * b)) & 0xff));
            }
            payload += record;
          }
          pending_.pop_front();
          ++count;
        }
      }
      const bool stored =
          options_.split ? PublishParts(group, first) : PublishUntilStored(payload, first, count);
      if (!stored) break;
      const Lsn last = first + count - 1;
      durable_lsn_.store(last, std::memory_order_release);
      waiters_.FireUpTo(last);
    }
    waiters_.Close(durable_lsn());
  }

  // Publishes one record group until JetStream has stored it. False when this writer is fenced
  // (another one appended to the subject) or the log closes before it is stored.
  //
  // The fencing has two parts, because the NATS server's Nats-Expected-Last-Subject-Sequence is
  // not enough on a replicated stream: the server checks it before it proposes the message to
  // the stream's replicas, against what they have applied, and not again when they apply it
  // ("If we are clustered we have prechecked", server/stream.go in 2.9.10;
  // nats-io/nats-server#4320). Two writers that both publish after sequence S before either
  // message is applied would both be stored: a forked chain, counted twice by every reader.
  // So the message id names the chain position, `<subject>@<S>`, and JetStream's
  // de-duplication, which every replica does when it applies a message, in log order, stores
  // only the first message at a position. The expected sequence stays: it refuses a stale
  // writer at once when the position is already applied.
  //
  // The same id makes a retry whose first attempt was stored a duplicate too, so a duplicate
  // (or a refusal) is ours only when the stored message carries this writer's Rta-Writer
  // header. When that cannot be read the writer fences itself: a restart is safe, a fork is
  // not.
  bool PublishUntilStored(const std::string& payload, Lsn first, uint64_t count) {
    const std::string position_id = options_.subject + "@" + std::to_string(last_sequence_);
    const std::string mine = writer_token_ + ":" + std::to_string(first);
    for (;;) {
      natsMsg* raw = nullptr;
      natsMsg_Create(&raw, options_.subject.c_str(), nullptr, payload.data(),
                     static_cast<int>(payload.size()));
      NatsMsgPtr msg(raw);
      natsMsgHeader_Set(msg.get(), kFirstLsnHeader, std::to_string(first).c_str());
      natsMsgHeader_Set(msg.get(), kRecordsHeader, std::to_string(count).c_str());
      natsMsgHeader_Set(msg.get(), kWriterHeader, mine.c_str());
      jsPubOptions options;
      jsPubOptions_Init(&options);
      options.MaxWait = options_.publish_timeout_ms;
      options.MsgId = position_id.c_str();
      if (last_sequence_ > 0) {
        options.ExpectLastSubjectSeq = last_sequence_;
      } else {
        options.ExpectNoMessage = true;
      }
      jsPubAck* ack = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      const natsStatus status = TimedPublish(msg.get(), options, &ack, &code);
      uint64_t sequence = 0;
      if (status == NATS_OK) {
        sequence = ack->Sequence;
        const bool duplicate = ack->Duplicate;
        jsPubAck_Destroy(ack);
        if (duplicate && !StoredIs(sequence, mine)) {
          return Fence("another writer's message took the place after stream sequence " +
                       std::to_string(last_sequence_) + " in " + options_.subject +
                       " first (stream sequence " + std::to_string(sequence) +
                       "): this log no longer writes there");
        }
      } else if (code == JSStreamWrongLastSequenceErr) {
        // Ours already (a retry of a message whose acknowledgement was lost), or another
        // writer's: the subject's last message says which.
        sequence = StoredAsLast(mine);
        if (sequence == 0) {
          return Fence("another writer appended to " + options_.subject +
                       " after stream sequence " + std::to_string(last_sequence_) +
                       ": this log no longer writes there");
        }
      }
      if (sequence > 0) {
        last_sequence_ = sequence;
        Remember(first, first + count - 1, sequence);
        publishes_.fetch_add(1, std::memory_order_relaxed);
        bytes_written_.fetch_add(payload.size(), std::memory_order_relaxed);
        SetHealth(true, "");
        return true;
      }
      if (!WaitToRetry(status, code)) return false;
    }
  }

  // Stops this log writing (every later append is refused with `why`); false, for the caller.
  bool Fence(std::string why) {
    std::lock_guard lock(mu_);
    fenced_ = true;
    writable_ = false;
    health_message_ = std::move(why);
    return false;
  }

  // js_PublishMsg, its time added to publish_nanos_.
  natsStatus TimedPublish(natsMsg* msg, const jsPubOptions& options, jsPubAck** ack,
                          jsErrCode* code) {
    const auto start = Clock::now();
    jsPubOptions copy = options;
    const natsStatus status = js_PublishMsg(ack, js_, msg, &copy, code);
    publish_nanos_.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count(),
        std::memory_order_relaxed);
    return status;
  }

  // Ingest mode: splits a group into its partitions' parts and publishes each (chunked below
  // max_payload) until stored. False when the log closes first.
  bool PublishParts(const std::vector<std::string>& group, Lsn first) {
    std::vector<std::string> parts(options_.partitions);
    int64_t ingest_ms = 0;
    for (const std::string& record : group) {
      if (!options_.split(record, &parts, &ingest_ms)) {
        publish_errors_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    const std::string ingest_text = std::to_string(ingest_ms);
    for (uint32_t partition = 0; partition < options_.partitions; ++partition) {
      const std::string& part = parts[partition];
      size_t at = 0;
      for (int chunk = 0; at < part.size(); ++chunk) {
        const size_t end = ChunkEnd(part, at);
        const std::string subject = subject_prefix_ + "." + std::to_string(partition);
        const std::string msg_id = options_.writer_id + ":" + std::to_string(first) + ":" +
                                   std::to_string(partition) + ":" + std::to_string(chunk);
        if (!PublishOnce(subject, msg_id, std::string_view(part).substr(at, end - at),
                         ingest_text)) {
          return false;
        }
        at = end;
      }
    }
    return true;
  }

  // Where a chunk of an EventBatch's wire bytes starting at `at` ends: whole fields (tag 0x0A,
  // varint length, bytes), as many as fit in max_message_bytes_ (at least one).
  size_t ChunkEnd(const std::string& part, size_t at) const {
    size_t end = at;
    while (end < part.size()) {
      size_t cursor = end + 1;  // the tag byte
      uint64_t length = 0;
      for (int shift = 0; cursor < part.size(); shift += 7) {
        const auto byte = static_cast<uint8_t>(part[cursor++]);
        length |= static_cast<uint64_t>(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) break;
      }
      const size_t field_end = std::min(part.size(), cursor + static_cast<size_t>(length));
      if (end > at && field_end - at > max_message_bytes_) break;
      end = field_end;
    }
    return end;
  }

  // One ingest-mode message, retried until JetStream stored it (its message id makes a retry
  // whose first attempt was stored a no-op). False when the log closes first.
  bool PublishOnce(const std::string& subject, const std::string& msg_id, std::string_view data,
                   const std::string& ingest_ms) {
    for (;;) {
      natsMsg* raw = nullptr;
      natsMsg_Create(&raw, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
      NatsMsgPtr msg(raw);
      natsMsgHeader_Set(msg.get(), kIngestMsHeader, ingest_ms.c_str());
      jsPubOptions options;
      jsPubOptions_Init(&options);
      options.MaxWait = options_.publish_timeout_ms;
      options.MsgId = msg_id.c_str();
      jsPubAck* ack = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      const natsStatus status = TimedPublish(msg.get(), options, &ack, &code);
      if (status == NATS_OK) {
        jsPubAck_Destroy(ack);
        publishes_.fetch_add(1, std::memory_order_relaxed);
        bytes_written_.fetch_add(data.size(), std::memory_order_relaxed);
        SetHealth(true, "");
        return true;
      }
      if (!WaitToRetry(status, code)) return false;
    }
  }

  // After a failed publish: counts it, reports it in health(), waits retry_interval_ms. False
  // when the log is closing and its deadline has passed.
  bool WaitToRetry(natsStatus status, jsErrCode code) {
    publish_errors_.fetch_add(1, std::memory_order_relaxed);
    SetHealth(false, "publishing to JetStream stream " + options_.stream +
                         " failed: " + DescribeNats(status, code) + "; retrying every " +
                         std::to_string(options_.retry_interval_ms) + " ms");
    std::unique_lock lock(mu_);
    if (closing_ && Clock::now() >= close_deadline_) return false;
    cv_.wait_for(lock, std::chrono::milliseconds(options_.retry_interval_ms),
                 [&] { return closing_ && Clock::now() >= close_deadline_; });
    return !(closing_ && Clock::now() >= close_deadline_);
  }

  // The stream sequence of the subject's last message if it is `mine`, else 0 (also when it
  // cannot be read).
  uint64_t StoredAsLast(const std::string& mine) {
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetLastMsg(&raw, js_, options_.stream.c_str(), options_.subject.c_str(), nullptr,
                      &code) != NATS_OK) {
      return 0;
    }
    NatsMsgPtr msg(raw);
    return IsMine(msg.get(), mine) ? natsMsg_GetSequence(msg.get()) : 0;
  }

  // True when the message at stream sequence `sequence` is `mine`; false when it is another
  // writer's or cannot be read.
  bool StoredIs(uint64_t sequence, const std::string& mine) {
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetMsg(&raw, js_, options_.stream.c_str(), sequence, nullptr, &code) != NATS_OK) {
      return false;
    }
    NatsMsgPtr msg(raw);
    return IsMine(msg.get(), mine);
  }

  static bool IsMine(natsMsg* msg, const std::string& mine) {
    const char* writer = nullptr;
    return natsMsgHeader_Get(msg, kWriterHeader, &writer) == NATS_OK && mine == writer;
  }

  const JetStreamLogOptions options_;
  const std::unique_ptr<NatsSession> session_;
  jsCtx* const js_;  // session_'s
  const size_t max_message_bytes_;
  const std::string subject_prefix_;  // the subject up to its last '.'
  const std::string writer_token_;    // WriterToken(options_.writer_id)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pending_;  // appended, not yet published, in Lsn order
  Lsn next_lsn_;
  storage::DurableWaiters waiters_;  // its own lock
  bool closing_ = false;
  Clock::time_point close_deadline_;
  bool writable_ = true;
  bool fenced_ = false;
  std::string health_message_;

  std::atomic<Lsn> durable_lsn_;
  std::atomic<Lsn> last_lsn_;
  uint64_t last_sequence_;  // the writer thread's: the subject's last stream sequence

  mutable std::mutex index_mu_;
  std::deque<Indexed> index_;  // messages of this subject still in the stream, oldest first

  std::atomic<uint64_t> records_appended_{0}, bytes_appended_{0}, refused_{0};
  std::atomic<uint64_t> bytes_written_{0}, publishes_{0}, publish_nanos_{0}, publish_errors_{0};
  std::atomic<uint64_t> pending_bytes_{0}, purge_errors_{0};
  std::thread writer_;
};

}  // namespace

bool EnsureStream(jsCtx* js, const std::string& stream, const std::string& subjects, int replicas,
                  int duplicate_window_ms, int timeout_ms, std::string* error) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus status = js_GetStreamInfo(&info, js, stream.c_str(), nullptr, &code);
    if (status == NATS_OK) {
      // A stream made by a version that read with consumers: direct gets turned on.
      if (!info->Config->AllowDirect) {
        info->Config->AllowDirect = true;
        jsStreamInfo* updated = nullptr;
        status = js_UpdateStream(&updated, js, info->Config, nullptr, &code);
        if (status == NATS_OK) jsStreamInfo_Destroy(updated);
      }
      jsStreamInfo_Destroy(info);
      if (status == NATS_OK) return true;
    } else if (code == JSStreamNotFoundErr) {
      jsStreamConfig config;
      jsStreamConfig_Init(&config);
      config.Name = stream.c_str();
      const char* subject_list[] = {subjects.c_str()};
      config.Subjects = subject_list;
      config.SubjectsLen = 1;
      config.Storage = js_FileStorage;
      config.Replicas = replicas;
      config.Duplicates = static_cast<int64_t>(duplicate_window_ms) * 1'000'000;
      // Direct gets (any replica answers a read by sequence or "next on subject"): how every
      // reader of these streams reads (DirectGetNext in nats_session.h says why).
      config.AllowDirect = true;
      status = js_AddStream(&info, js, &config, nullptr, &code);
      if (status == NATS_OK) {
        jsStreamInfo_Destroy(info);
        return true;
      }
    }
    if (Clock::now() >= deadline) {
      *error = "JetStream stream " + stream + " not available within " +
               std::to_string(timeout_ms) + " ms: " + DescribeNats(status, code);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

bool ForEachLogRecord(natsMsg* msg,
                      const std::function<bool(storage::Lsn, std::string_view)>& visit) {
  Lsn first = 0;
  uint64_t count = 0;
  bool stopped = false;
  return ReadHeaders(msg, &first, &count) && ForEachRecord(msg, first, count, visit, &stopped) &&
         !stopped;
}

std::unique_ptr<storage::EventLog> OpenJetStreamLog(const JetStreamLogOptions& options,
                                                    storage::OpenReport* report,
                                                    std::string* error) {
  std::unique_ptr<NatsSession> session =
      NatsSession::Connect(options.servers, options.publish_timeout_ms, error);
  if (session == nullptr) return nullptr;
  jsCtx* js = session->js();
  natsStatus status = NATS_OK;
  auto fail = [&](const std::string& why) -> std::unique_ptr<storage::EventLog> {
    *error = why;
    return nullptr;
  };

  const std::string prefix = options.subject.substr(0, options.subject.rfind('.'));
  if (!EnsureStream(js, options.stream, prefix + ".>", options.replicas,
                    options.duplicate_window_ms, options.connect_timeout_ms, error)) {
    return nullptr;
  }

  // Where the Lsns stand: the subject's last message (ingest mode: this process's own Lsns).
  Lsn last_lsn = 0;
  Lsn last_first_lsn = 0;  // the first record of the subject's last message
  uint64_t last_sequence = 0;
  if (!options.split) {
    natsMsg* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    status =
        js_GetLastMsg(&raw, js, options.stream.c_str(), options.subject.c_str(), nullptr, &code);
    if (status == NATS_OK) {
      NatsMsgPtr msg(raw);
      Lsn first = 0;
      uint64_t count = 0;
      if (!ReadHeaders(msg.get(), &first, &count)) {
        return fail("the last message of " + options.subject + " in " + options.stream +
                    " is not a record group of this log");
      }
      last_lsn = first + count - 1;
      last_first_lsn = first;
      last_sequence = natsMsg_GetSequence(msg.get());
    } else if (code != JSNoMessageFoundErr) {
      return fail("cannot read the last message of " + options.subject + ": " +
                  DescribeNats(status, code));
    }
  }
  if (report != nullptr) {
    *report = {};
    report->last_lsn = last_lsn;
    report->first_lsn = last_lsn + 1;  // ReadFrom reports the records it finds
  }
  return std::make_unique<JetStreamLog>(options, std::move(session), last_lsn, last_sequence,
                                        last_first_lsn);
}

}  // namespace rta::cluster
