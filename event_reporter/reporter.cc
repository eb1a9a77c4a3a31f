#include "event_reporter/reporter.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <optional>
#include <random>

namespace rta::reporter {
namespace {

using Clock = std::chrono::steady_clock;

// Trailing metadata in which analytics_server reports what it counted of a stream that ended
// with an error (a serialized EventResponse).
constexpr char kCountsTrailer[] = "rta-event-response-bin";

std::string RandomIdPrefix() {
  std::random_device device;
  const uint64_t value = (static_cast<uint64_t>(device()) << 32) ^ device();
  char text[24];
  std::snprintf(text, sizeof text, "r%016" PRIx64, value);
  return text;
}

std::string Seconds(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(duration.count()) / 1000);
  return text;
}

// The largest message the server takes, from gRPC's refusal of a larger one (RESOURCE_EXHAUSTED,
// "Received message larger than max (62709 vs. 20000)": the server's --max-message-bytes is below
// this client's --batch-bytes); 0 when `status` is not that refusal.
size_t ServerMessageLimit(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) return 0;
  const std::string& text = status.error_message();
  const size_t at = text.find("larger than max (");
  unsigned long long size = 0, limit = 0;
  if (at == std::string::npos ||
      std::sscanf(text.c_str() + at, "larger than max (%llu vs. %llu)", &size, &limit) != 2) {
    return 0;
  }
  return static_cast<size_t>(limit);
}

// An event's bytes in a batch, as --batch-bytes counts them: its own, plus the repeated
// field's tag and length.
size_t EventBytes(const analytics::EventData& event) { return event.ByteSizeLong() + 4; }

// Splits `events` in order into runs of at most `max_bytes` (EventBytes; an event larger than
// that alone in its run). `lines` (one per event) is split the same way into *line_runs.
std::vector<analytics::EventBatch> SplitEvents(
    google::protobuf::RepeatedPtrField<analytics::EventData>* events,
    const std::vector<uint64_t>& lines, size_t max_bytes,
    std::vector<std::vector<uint64_t>>* line_runs) {
  std::vector<analytics::EventBatch> runs;
  size_t bytes = 0;
  for (int i = 0; i < events->size(); ++i) {
    const size_t event_bytes = EventBytes(events->Get(i));
    if (runs.empty() || (bytes > 0 && bytes + event_bytes > max_bytes)) {
      runs.emplace_back();
      line_runs->emplace_back();
      bytes = 0;
    }
    runs.back().add_events()->Swap(events->Mutable(i));
    line_runs->back().push_back(static_cast<size_t>(i) < lines.size() ? lines[i] : 0);
    bytes += event_bytes;
  }
  return runs;
}

bool WriteBatch(grpc::ClientWriter<analytics::EventBatch>& writer,
                const analytics::EventBatch& batch) {
  return writer.Write(batch);
}

bool WriteBatch(grpc::ClientWriter<analytics::EventData>& writer,
                const analytics::EventBatch& batch) {
  // One message per event; all but the last of a batch may wait in gRPC's buffer for the next.
  for (int i = 0; i < batch.events_size(); ++i) {
    grpc::WriteOptions options;
    if (i + 1 < batch.events_size()) options.set_buffer_hint();
    if (!writer.Write(batch.events(i), options)) return false;
  }
  return true;
}

}  // namespace

// What both kinds of lane share: the stream in progress, which the drain's end cancels from
// the watcher thread, and the retry backoff.
class Reporter::LaneBase {
 public:
  LaneBase(Reporter& reporter, EventQueue& queue, uint64_t seed)
      : reporter_(reporter), queue_(queue), rng_(seed) {}
  virtual ~LaneBase() = default;

  virtual void Run() = 0;
  // Cancels the stream in progress, if any (any thread).
  void Cancel() {
    std::lock_guard lock(context_mutex_);
    if (context_ != nullptr) context_->TryCancel();
  }

 protected:
  // Registers the stream's context for Cancel(); false when the drain has already ended.
  bool SetContext(grpc::ClientContext* context) {
    std::lock_guard lock(context_mutex_);
    context_ = context;
    return context == nullptr || !reporter_.drain_expired();
  }
  std::chrono::milliseconds NextBackoff(int failures);
  void SleepUnlessStopped(std::chrono::milliseconds duration);
  // Adds an answer's counts to the totals and logs its rejections by input line (`lines`: the
  // input line of each event of the stream or batch, by position).
  void CountAnswer(uint64_t accepted, uint64_t duplicates, uint64_t rejected,
                   const google::protobuf::RepeatedPtrField<std::string>& errors,
                   const std::vector<uint64_t>& lines, const char* scope);

  // What a lane did about a stream the server ended because a message was over its size limit.
  enum class Fit {
    kRefitted,   // smaller batches from now on, the unacknowledged events in smaller messages
    kUnchanged,  // nothing to change: an ordinary failure
  };
  // Gives up on an event that is `bytes` in a message of its own, over the server's `limit`:
  // no message can carry it (the server would refuse it as too large anyway). It counts as
  // failed; the delivery goes on without it.
  void DropOverLimit(uint64_t line, size_t bytes, size_t limit);

  Reporter& reporter_;
  EventQueue& queue_;  // this lane's: the events of the sessions Submit() routes here
  std::mt19937_64 rng_;

 private:
  std::mutex context_mutex_;
  grpc::ClientContext* context_ = nullptr;  // guarded by context_mutex_
};

// One sending thread of ReportEventBatches / ReportEvent: a stream at a time, and the events of
// the current stream until the server acknowledges them.
class Reporter::Lane : public Reporter::LaneBase {
 public:
  using LaneBase::LaneBase;

  void Run() override;

 private:
  template <typename Message>
  grpc::Status Stream(std::unique_ptr<grpc::ClientWriter<Message>> writer);
  grpc::Status SendOneStream(analytics::EventResponse* response, std::string* peer,
                             std::optional<analytics::EventResponse>* trailer);
  // Counts a response and forgets the stream's events (they are acknowledged).
  void Acknowledge(const analytics::EventResponse& response);
  // Adds a response's counts to the totals and logs its rejections by input line.
  void CountResponse(const analytics::EventResponse& response);
  // Stops the delivery after a refusal that retrying cannot fix, with the server's message.
  void Refused(const std::string& what, const std::string& message,
               const std::optional<analytics::EventResponse>& trailer);
  void DropPending();
  // After the server refused a message over `server_limit` bytes: lowers the batch size and
  // splits the stream's batches to it (dropping an event no message can carry), so that the
  // resend goes through.
  Fit FitMessages(size_t server_limit);
  std::string LinesText(size_t from, size_t to) const;

  // The current stream's events, as written, kept for a resend until acknowledged.
  std::vector<analytics::EventBatch> batches_;
  std::vector<uint64_t> lines_;
  size_t events_ = 0;
  int failures_ = 0;    // consecutive
  int mismatches_ = 0;  // consecutive acknowledgement mismatches
  Clock::time_point first_failure_;
};

void Reporter::Lane::Run() {
  const DeliveryOptions& options = reporter_.options_;
  for (;;) {
    if (reporter_.stopped_.load() || reporter_.drain_expired()) {
      DropPending();
      return;
    }
    if (events_ == 0 && !queue_.WaitNonEmpty()) return;  // closed and drained
    analytics::EventResponse response;
    std::string peer;
    std::optional<analytics::EventResponse> trailer;
    const grpc::Status status = SendOneStream(&response, &peer, &trailer);
    const uint64_t counted = response.accepted() + response.duplicates() + response.rejected();
    if (status.ok() && counted == events_) {
      Acknowledge(response);
      continue;
    }
    if (reporter_.drain_expired()) continue;  // cancelled at the drain's end
    if (const size_t limit = ServerMessageLimit(status);
        limit > 0 && FitMessages(limit) == Fit::kRefitted) {
      reporter_.retries_.fetch_add(1, std::memory_order_relaxed);
      continue;  // at once: the same events, in messages the server takes
    }
    const auto now = Clock::now();
    if (failures_++ == 0) first_failure_ = now;
    // What went wrong, for the messages below.
    std::string what;
    if (status.ok()) {
      // The server answered OK but did not account for every event: some may not have been
      // counted. The counts of this response are not added up (the resend's response counts
      // every event again, as accepted or duplicate).
      reporter_.ack_mismatches_.fetch_add(1, std::memory_order_relaxed);
      what = "the server acknowledged " + std::to_string(counted) + " of " +
             std::to_string(events_) + " events (" + std::to_string(response.accepted()) +
             " accepted, " + std::to_string(response.duplicates()) + " duplicates, " +
             std::to_string(response.rejected()) + " rejected)";
      if (++mismatches_ >= kMaxConsecutiveMismatches) {
        reporter_.Stop(what + ", " + std::to_string(mismatches_) +
                       " times in a row for the same events; stopped: its counts cannot be "
                       "trusted");
        continue;
      }
    } else {
      mismatches_ = 0;
      const std::string code = client::StatusCodeName(status.error_code());
      what = code + ": " + status.error_message();
      if (!client::IsRetryable(status.error_code())) {
        Refused(what, status.error_message(), trailer);
        continue;
      }
    }
    if (now - first_failure_ >= options.give_up_after) {
      reporter_.Stop(
          "gave up after " +
          Seconds(std::chrono::duration_cast<std::chrono::milliseconds>(now - first_failure_)) +
          " of failures; last: " + what);
      continue;
    }
    const std::chrono::milliseconds backoff = NextBackoff(failures_);
    if (events_ > 0) {  // a stream that failed before taking any event needs no resend
      reporter_.retries_.fetch_add(1, std::memory_order_relaxed);
      // A channel that is not READY has no connection: the server is down or unreachable.
      const bool unreachable =
          !status.ok() && (reporter_.channel_->GetState(false) != GRPC_CHANNEL_READY);
      if (status.ok()) {
        reporter_.Log("stream to " + peer + ": " + what + "; resending its " +
                      std::to_string(events_) + " events in " + Seconds(backoff) +
                      " (the server de-duplicates them by event_id)");
      } else if (unreachable || peer.empty()) {
        reporter_.Log("server unreachable at " + client::DescribeServers(options.channel) + " (" +
                      client::StatusCodeName(status.error_code()) + "), retrying in " +
                      Seconds(backoff));
      } else {
        reporter_.Log("stream to " + peer + " failed (" + what + "), resending " +
                      std::to_string(events_) + " events in " + Seconds(backoff));
      }
    }
    SleepUnlessStopped(backoff);
  }
}

std::string Reporter::Lane::LinesText(size_t from, size_t to) const {
  // Input lines of the stream's events [from, to), e.g. "input lines 11-15"; "" when the
  // events did not come from a file.
  uint64_t first = UINT64_MAX, last = 0;
  for (size_t i = from; i < std::min(to, lines_.size()); ++i) {
    if (lines_[i] == 0) continue;
    first = std::min(first, lines_[i]);
    last = std::max(last, lines_[i]);
  }
  if (last == 0) return "";
  if (last == first) return "input line " + std::to_string(first);
  return "input lines " + std::to_string(first) + "-" + std::to_string(last);
}

void Reporter::Lane::Refused(const std::string& what, const std::string& message,
                             const std::optional<analytics::EventResponse>& trailer) {
  // analytics_server ends a stream it refuses with what it counted before the refusal in the
  // trailer (a message it cannot parse, a batch over --max-batch-events, ...). It counts whole
  // messages in order, so when the trailer's count is the events of the stream's first
  // messages, those were counted and only the rest fail; a count that matches no such prefix
  // is not trusted, and every event of the stream fails. A message the server names by its
  // position ("message #N", 0-based) also says where to look in the input.
  const bool batched = reporter_.options_.protocol == Protocol::kBatches;
  size_t counted_events = 0;
  bool counted_known = false;
  if (trailer) {
    const uint64_t counted = trailer->accepted() + trailer->duplicates() + trailer->rejected();
    if (!batched) {
      counted_known = counted <= events_;
    } else {
      uint64_t prefix = 0;
      for (size_t i = 0; i <= batches_.size() && prefix <= counted; ++i) {
        if (prefix == counted) {
          counted_known = true;
          break;
        }
        if (i < batches_.size()) prefix += static_cast<uint64_t>(batches_[i].events_size());
      }
    }
    if (counted_known) counted_events = static_cast<size_t>(counted);
  }
  unsigned long long position = 0;
  const bool named = std::sscanf(message.c_str(), "message #%llu", &position) == 1;
  size_t before = 0, size = 0;  // events before message #position, and in it
  if (named && batched && position < batches_.size()) {
    for (size_t i = 0; i < position; ++i) before += batches_[i].events_size();
    size = batches_[position].events_size();
  } else if (named && !batched && position < events_) {
    before = position;
    size = 1;
  }
  // A named message and a count that disagree: neither is trusted.
  if (size > 0 && counted_events != before) counted_events = 0;
  const std::string counted_text =
      std::to_string(counted_events) + (counted_events == 1 ? " event" : " events");
  std::string where;
  if (named) {
    const std::string lines = size > 0 ? LinesText(before, before + size) : "";
    if (!lines.empty()) where = "message #" + std::to_string(position) + " carried " + lines;
    if (counted_events > 0) {
      where += std::string(where.empty() ? "" : "; ") + "the " + counted_text + " before it " +
               (counted_events == 1 ? "was" : "were") + " counted";
    }
  } else {
    const std::string lines = LinesText(counted_events, lines_.size());
    if (counted_events > 0) {
      where = "the server counted the stream's first " +
              (counted_events == 1 ? std::string("event") : counted_text) +
              (lines.empty() ? "" : "; the rest carried " + lines);
    } else if (!lines.empty()) {
      where = "that stream carried " + lines;
    }
  }
  if (counted_events > 0) {
    CountResponse(*trailer);
    events_ -= counted_events;  // what is left fails when the delivery stops
    lines_.erase(lines_.begin(), lines_.begin() + static_cast<std::ptrdiff_t>(
                                                      std::min(counted_events, lines_.size())));
  }
  reporter_.Stop("the server refused the events (" + what + "); retrying cannot fix this" +
                 (where.empty() ? "" : " (" + where + ")"));
}

grpc::Status Reporter::Lane::SendOneStream(analytics::EventResponse* response, std::string* peer,
                                           std::optional<analytics::EventResponse>* trailer) {
  const DeliveryOptions& options = reporter_.options_;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options.deadline);
  client::AddCredentials(options.channel, &context);
  if (!SetContext(&context)) {
    SetContext(nullptr);
    return grpc::Status(grpc::StatusCode::CANCELLED, "interrupted");
  }
  grpc::Status status = options.protocol == Protocol::kBatches
                            ? Stream(reporter_.stub_->ReportEventBatches(&context, response))
                            : Stream(reporter_.stub_->ReportEvent(&context, response));
  SetContext(nullptr);
  *peer = context.peer();
  trailer->reset();
  if (!status.ok()) {
    // analytics_server ends a stream that fails after it started with what it had counted.
    const auto& metadata = context.GetServerTrailingMetadata();
    if (const auto it = metadata.find(kCountsTrailer); it != metadata.end()) {
      analytics::EventResponse counted;
      if (counted.ParseFromArray(it->second.data(), static_cast<int>(it->second.size()))) {
        *trailer = std::move(counted);
      }
    }
  }
  return status;
}

template <typename Message>
grpc::Status Reporter::Lane::Stream(std::unique_ptr<grpc::ClientWriter<Message>> writer) {
  const DeliveryOptions& options = reporter_.options_;
  const auto stream_end = Clock::now() + std::min(options.stream_duration, options.deadline / 2);
  bool writable = true;
  for (const analytics::EventBatch& batch : batches_) {  // a resend: the same events, in order
    if (!(writable = WriteBatch(*writer, batch))) break;
  }
  while (writable && events_ < options.stream_events && !reporter_.stopped_.load()) {
    analytics::EventBatch batch;
    const size_t taken =
        queue_.PopBatch(std::min(options.batch_events, options.stream_events - events_),
                        reporter_.batch_bytes(), stream_end, options.linger, &batch, &lines_);
    if (taken == 0) break;  // the input ended, or the stream is old enough to close
    events_ += taken;
    reporter_.sent_.fetch_add(taken, std::memory_order_relaxed);
    batches_.push_back(std::move(batch));
    writable = WriteBatch(*writer, batches_.back());
  }
  if (writable) writer->WritesDone();
  return writer->Finish();
}

void Reporter::Lane::Acknowledge(const analytics::EventResponse& response) {
  CountResponse(response);
  batches_.clear();
  lines_.clear();
  events_ = 0;
  failures_ = 0;
  mismatches_ = 0;
}

void Reporter::Lane::CountResponse(const analytics::EventResponse& response) {
  CountAnswer(response.accepted(), response.duplicates(), response.rejected(), response.errors(),
              lines_, "stream");
}

void Reporter::LaneBase::CountAnswer(uint64_t accepted, uint64_t duplicates, uint64_t rejected,
                                     const google::protobuf::RepeatedPtrField<std::string>& errors,
                                     const std::vector<uint64_t>& lines, const char* scope) {
  reporter_.accepted_.fetch_add(accepted, std::memory_order_relaxed);
  reporter_.duplicates_.fetch_add(duplicates, std::memory_order_relaxed);
  reporter_.rejected_.fetch_add(rejected, std::memory_order_relaxed);
  // The server names a refused event by its position in the stream or batch ("event #12 (id
  // x): field: reason"); the position finds the input line.
  for (const std::string& error : errors) {
    unsigned long long position = 0;
    int consumed = 0;
    std::string text = error;
    if (std::sscanf(error.c_str(), "event #%llu%n", &position, &consumed) == 1 &&
        position < lines.size() && lines[position] > 0) {
      text = "line " + std::to_string(lines[position]) + error.substr(consumed);
    }
    reporter_.Log("rejected: " + text);
  }
  if (rejected > static_cast<uint64_t>(errors.size())) {
    reporter_.Log("rejected: " + std::to_string(rejected - errors.size()) + " more events in the same " +
                  scope + " (the server names the first " + std::to_string(errors.size()) + ")");
  }
}

std::chrono::milliseconds Reporter::LaneBase::NextBackoff(int failures) {
  // Exponential, capped, with jitter over its upper half so that many clients a server restart
  // disconnected at once do not come back at once.
  const DeliveryOptions& options = reporter_.options_;
  const double ceiling = std::min<double>(static_cast<double>(options.max_backoff.count()),
                                          static_cast<double>(options.initial_backoff.count()) *
                                              std::pow(2.0, std::min(failures - 1, 20)));
  const double delay = std::uniform_real_distribution<double>(ceiling / 2, ceiling)(rng_);
  return std::chrono::milliseconds(static_cast<int64_t>(delay));
}

void Reporter::LaneBase::SleepUnlessStopped(std::chrono::milliseconds duration) {
  const auto until = Clock::now() + duration;
  while (!reporter_.stopped_.load() && !reporter_.drain_expired() && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
}

void Reporter::LaneBase::DropOverLimit(uint64_t line, size_t bytes, size_t limit) {
  reporter_.GiveUp(1, {line});
  reporter_.Log("not sent: the event " +
                (line > 0 ? "on input line " + std::to_string(line) + " " : std::string()) + "is " +
                std::to_string(bytes) +
                " bytes in a message of its own, over the server's limit of " +
                std::to_string(limit) + " bytes (its --max-message-bytes)");
}

Reporter::LaneBase::Fit Reporter::Lane::FitMessages(size_t server_limit) {
  bool changed = false;
  const size_t max_bytes = reporter_.LowerBatchBytes(server_limit, &changed);
  const bool per_event = reporter_.options_.protocol == Protocol::kEvents;
  // The stream's events in order, without those no message can carry, in batches that fit.
  // (ReportEvent sends one event per message whatever the batches.)
  std::vector<analytics::EventBatch> fitted;
  std::vector<uint64_t> lines;
  size_t position = 0;
  for (analytics::EventBatch& batch : batches_) {
    analytics::EventBatch kept;
    for (int i = 0; i < batch.events_size(); ++i, ++position) {
      const uint64_t line = position < lines_.size() ? lines_[position] : 0;
      analytics::EventBatch alone;
      *alone.add_events() = batch.events(i);
      const size_t bytes = per_event ? batch.events(i).ByteSizeLong() : alone.ByteSizeLong();
      if (bytes > server_limit) {
        DropOverLimit(line, bytes, server_limit);
        --events_;
        changed = true;
        continue;
      }
      kept.add_events()->Swap(batch.mutable_events(i));
      lines.push_back(line);
    }
    if (kept.events_size() == 0) continue;
    if (per_event || kept.ByteSizeLong() <= max_bytes) {
      fitted.push_back(std::move(kept));
      continue;
    }
    std::vector<std::vector<uint64_t>> line_runs;  // `lines` keeps the events' order
    for (analytics::EventBatch& run :
         SplitEvents(kept.mutable_events(), {}, max_bytes, &line_runs)) {
      fitted.push_back(std::move(run));
    }
    changed = true;
  }
  batches_ = std::move(fitted);
  lines_ = std::move(lines);
  return changed ? Fit::kRefitted : Fit::kUnchanged;
}

void Reporter::Lane::DropPending() {
  reporter_.GiveUp(events_, lines_);
  batches_.clear();
  lines_.clear();
  events_ = 0;
}

// One producer of PublishEvents: a stream at a time, a window of unacknowledged batches that
// outlives streams, the lane's thread writing and a reader thread per stream taking the acks.
class Reporter::PublishLane : public Reporter::LaneBase {
 public:
  PublishLane(Reporter& reporter, EventQueue& queue, uint64_t seed, std::string producer_id)
      : LaneBase(reporter, queue, seed),
        base_producer_id_(producer_id),
        producer_id_(producer_id) {}

  void Run() override;

 private:
  // A batch sent and not yet acknowledged. Shared with the writer while it is written.
  struct Pending {
    analytics::PublishRequest request;
    std::vector<uint64_t> lines;  // input line of each event
    size_t bytes = 0;
  };
  using Stream = grpc::ClientReaderWriter<analytics::PublishRequest, analytics::PublishAck>;

  // One stream: re-sends the window, then sends new batches while it has room, until the input
  // ends or pauses (WritesDone; the server acks the rest and ends the stream) or the stream
  // breaks. Fills *mismatch when an ack was wrong (the stream was then cancelled).
  grpc::Status RunStream(std::string* peer, std::string* mismatch, bool* progressed);
  void ReadAcks(Stream* stream, grpc::ClientContext* context);
  // Waits until pred() (under mutex_) or until the stream must end: the reader is done, the
  // delivery stopped, the drain is over, or no ack came for options.deadline while batches
  // wait for one (then cancels the stream). True when pred() holds.
  bool WaitOnStream(std::unique_lock<std::mutex>& lock, const std::function<bool()>& pred,
                    grpc::ClientContext* context);
  void Refused(const std::string& what, const std::string& message);
  void DropWindow();
  // After the server refused a message over `server_limit` bytes: lowers the batch size and
  // splits the unacknowledged batches from the refused one on (dropping an event no message can
  // carry), numbered again from its sequence (the server never read it nor any after it), so
  // that the resend goes through.
  Fit FitMessages(size_t server_limit);
  size_t WindowEvents();
  // Continues as a new producer (the next generation of this lane's id), the unacknowledged
  // batches numbered from 1 again.
  void NewProducer();

  const std::string base_producer_id_;
  std::string producer_id_;
  int generation_ = 0;
  uint64_t next_sequence_ = 1;
  int failures_ = 0;    // consecutive streams that failed without an ack
  int mismatches_ = 0;  // consecutive acknowledgement mismatches
  Clock::time_point first_failure_;
  // Sequences in the order written on the current stream: names "message #N" of a refusal.
  std::vector<uint64_t> written_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<const Pending>> window_;  // guarded by mutex_, oldest first
  size_t window_bytes_ = 0;                             // guarded by mutex_
  bool reader_done_ = false;                            // guarded by mutex_
  bool progressed_ = false;         // guarded by mutex_: an ack arrived on this stream
  std::string mismatch_;            // guarded by mutex_
  bool stalled_ = false;            // guarded by mutex_: cancelled for want of acks
  Clock::time_point last_progress_;  // guarded by mutex_
};

size_t Reporter::PublishLane::WindowEvents() {
  std::lock_guard lock(mutex_);
  size_t events = 0;
  for (const auto& pending : window_) events += pending->request.events_size();
  return events;
}

void Reporter::PublishLane::NewProducer() {
  producer_id_ = base_producer_id_ + "." + std::to_string(++generation_);
  std::lock_guard lock(mutex_);
  next_sequence_ = 1;
  for (auto& pending : window_) {
    auto renumbered = std::make_shared<Pending>(*pending);
    renumbered->request.set_producer_id(producer_id_);
    renumbered->request.set_sequence(next_sequence_++);
    pending = std::move(renumbered);
  }
}

Reporter::LaneBase::Fit Reporter::PublishLane::FitMessages(size_t server_limit) {
  bool changed = false;
  const size_t max_bytes = reporter_.LowerBatchBytes(server_limit, &changed);
  std::lock_guard lock(mutex_);
  // The batches before the first one over the limit may have been counted (their acks lost
  // with the stream): they keep their sequences.
  size_t first = 0;
  while (first < window_.size() && window_[first]->bytes <= server_limit) ++first;
  if (first == window_.size()) return changed ? Fit::kRefitted : Fit::kUnchanged;
  uint64_t sequence = window_[first]->request.sequence();
  std::deque<std::shared_ptr<const Pending>> fitted(window_.begin(), window_.begin() + first);
  for (size_t i = first; i < window_.size(); ++i) {
    // The batch's events without those no message can carry, in batches that fit.
    const Pending& old = *window_[i];
    analytics::PublishRequest kept;
    std::vector<uint64_t> kept_lines;
    for (int j = 0; j < old.request.events_size(); ++j) {
      const uint64_t line = static_cast<size_t>(j) < old.lines.size() ? old.lines[j] : 0;
      analytics::PublishRequest alone;
      alone.set_producer_id(old.request.producer_id());
      alone.set_sequence(old.request.sequence());
      *alone.add_events() = old.request.events(j);
      if (const size_t bytes = alone.ByteSizeLong(); bytes > server_limit) {
        DropOverLimit(line, bytes, server_limit);
        continue;
      }
      *kept.add_events() = old.request.events(j);
      kept_lines.push_back(line);
    }
    std::vector<std::vector<uint64_t>> line_runs;
    std::vector<analytics::EventBatch> runs =
        SplitEvents(kept.mutable_events(), kept_lines, max_bytes, &line_runs);
    for (size_t r = 0; r < runs.size(); ++r) {
      auto pending = std::make_shared<Pending>();
      pending->request.set_producer_id(producer_id_);
      pending->request.set_sequence(sequence++);
      pending->request.mutable_events()->Swap(runs[r].mutable_events());
      pending->lines = std::move(line_runs[r]);
      pending->bytes = pending->request.ByteSizeLong();
      fitted.push_back(std::move(pending));
    }
  }
  window_ = std::move(fitted);
  window_bytes_ = 0;
  for (const auto& pending : window_) window_bytes_ += pending->bytes;
  next_sequence_ = sequence;
  return Fit::kRefitted;
}

void Reporter::PublishLane::DropWindow() {
  std::lock_guard lock(mutex_);
  for (const auto& pending : window_) {
    reporter_.GiveUp(pending->request.events_size(), pending->lines);
  }
  window_.clear();
  window_bytes_ = 0;
}

void Reporter::PublishLane::Run() {
  const DeliveryOptions& options = reporter_.options_;
  for (;;) {
    if (reporter_.stopped_.load() || reporter_.drain_expired()) {
      DropWindow();
      return;
    }
    const size_t unacknowledged = WindowEvents();
    if (unacknowledged == 0 && !queue_.WaitNonEmpty()) return;  // closed and drained
    std::string peer, mismatch;
    bool progressed = false;
    const grpc::Status status = RunStream(&peer, &mismatch, &progressed);
    if (progressed) failures_ = mismatches_ = 0;
    const size_t left = WindowEvents();
    if (status.ok() && mismatch.empty() && left == 0) {
      mismatches_ = 0;
      continue;
    }
    if (reporter_.drain_expired() || reporter_.stopped_.load()) continue;
    if (const size_t limit = ServerMessageLimit(status);
        limit > 0 && mismatch.empty() && FitMessages(limit) == Fit::kRefitted) {
      reporter_.retries_.fetch_add(1, std::memory_order_relaxed);
      continue;  // at once: the same events, in batches the server takes
    }
    const auto now = Clock::now();
    if (failures_++ == 0) first_failure_ = now;
    std::string what;
    if (!mismatch.empty()) {
      reporter_.ack_mismatches_.fetch_add(1, std::memory_order_relaxed);
      what = mismatch;
      if (++mismatches_ >= kMaxConsecutiveMismatches) {
        reporter_.Stop(what + ", " + std::to_string(mismatches_) +
                       " times in a row; stopped: its acknowledgements cannot be trusted");
        continue;
      }
    } else if (status.ok()) {
      what = "the server ended the stream with " + std::to_string(left) +
             " events unacknowledged";
    } else {
      what = std::string(client::StatusCodeName(status.error_code())) + ": " + status.error_message();
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
          options.channel.servers.size() > 1) {
        // A sequence gap: with several servers the stream reconnected to one that holds an
        // older state of this producer. A new producer id starts afresh there; the events keep
        // their ids, so the server de-duplicates any it already counted.
        const std::string old_id = producer_id_;
        NewProducer();
        reporter_.retries_.fetch_add(1, std::memory_order_relaxed);
        reporter_.Log("stream to " + (peer.empty() ? std::string("the server") : peer) +
                      " refused producer " + old_id + " (" + what + "); resending " +
                      std::to_string(left) + " unacknowledged events as producer " +
                      producer_id_);
        continue;
      }
      if (!client::IsRetryable(status.error_code())) {
        Refused(what, status.error_message());
        continue;
      }
    }
    if (now - first_failure_ >= options.give_up_after) {
      reporter_.Stop(
          "gave up after " +
          Seconds(std::chrono::duration_cast<std::chrono::milliseconds>(now - first_failure_)) +
          " of failures; last: " + what);
      continue;
    }
    const std::chrono::milliseconds backoff = NextBackoff(failures_);
    if (left > 0) {
      reporter_.retries_.fetch_add(1, std::memory_order_relaxed);
      const bool unreachable =
          !status.ok() && (reporter_.channel_->GetState(false) != GRPC_CHANNEL_READY);
      if (!status.ok() && (unreachable || peer.empty())) {
        reporter_.Log("server unreachable at " + client::DescribeServers(options.channel) + " (" +
                      client::StatusCodeName(status.error_code()) + "), retrying in " +
                      Seconds(backoff));
      } else {
        reporter_.Log("stream to " + (peer.empty() ? std::string("the server") : peer) +
                      " failed (" + what + "), resending " + std::to_string(left) +
                      " unacknowledged events in " + Seconds(backoff));
      }
    }
    SleepUnlessStopped(backoff);
  }
}

bool Reporter::PublishLane::WaitOnStream(std::unique_lock<std::mutex>& lock,
                                         const std::function<bool()>& pred,
                                         grpc::ClientContext* context) {
  const DeliveryOptions& options = reporter_.options_;
  for (;;) {
    if (pred()) return true;
    if (reporter_.stopped_.load() || reporter_.drain_expired()) {
      context->TryCancel();
      return false;
    }
    if (reader_done_) return false;
    if (!window_.empty() && Clock::now() - last_progress_ >= options.deadline) {
      stalled_ = true;
      context->TryCancel();
      return false;
    }
    changed_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

grpc::Status Reporter::PublishLane::RunStream(std::string* peer, std::string* mismatch,
                                              bool* progressed) {
  const DeliveryOptions& options = reporter_.options_;
  grpc::ClientContext context;
  client::AddCredentials(options.channel, &context);
  if (!SetContext(&context)) {
    SetContext(nullptr);
    return grpc::Status(grpc::StatusCode::CANCELLED, "interrupted");
  }
  std::unique_ptr<Stream> stream = reporter_.stub_->PublishEvents(&context);
  std::vector<std::shared_ptr<const Pending>> resend;
  {
    std::lock_guard lock(mutex_);
    reader_done_ = false;
    progressed_ = false;
    stalled_ = false;
    mismatch_.clear();
    last_progress_ = Clock::now();
    resend.assign(window_.begin(), window_.end());
  }
  written_.clear();
  std::thread reader([this, &stream, &context] { ReadAcks(stream.get(), &context); });
  bool writable = true;
  for (const auto& pending : resend) {  // the unacknowledged batches, with their sequences
    written_.push_back(pending->request.sequence());
    if (!(writable = stream->Write(pending->request))) break;
  }
  resend.clear();
  // How long a stream with nothing to send and nothing unacknowledged stays open.
  const auto idle_limit = std::min(options.stream_duration, options.deadline / 2);
  auto idle_since = Clock::now();
  while (writable && !reporter_.stopped_.load()) {
    size_t room_bytes = 0;
    {
      std::unique_lock lock(mutex_);
      const bool room = WaitOnStream(
          lock,
          [&] {
            return window_.size() < options.window_batches &&
                   (window_.empty() || window_bytes_ + 1'024 <= options.window_bytes);
          },
          &context);
      if (!room) {
        writable = false;  // the stream is over: no WritesDone
        break;
      }
      const size_t batch_bytes = reporter_.batch_bytes();
      room_bytes = window_.empty()
                       ? batch_bytes
                       : std::min(batch_bytes, options.window_bytes -
                                                   std::min(options.window_bytes, window_bytes_));
    }
    auto pending = std::make_shared<Pending>();
    analytics::EventBatch batch;
    // Waits a little for the first event, so that a stop or the idle limit is seen in time.
    const size_t taken = queue_.PopBatch(options.batch_events, room_bytes,
                                         Clock::now() + std::chrono::milliseconds(100),
                                         options.linger, &batch, &pending->lines);
    if (taken == 0) {
      if (queue_.Drained()) break;  // the input ended
      std::lock_guard lock(mutex_);
      if (reader_done_) {
        writable = false;
        break;
      }
      if (window_.empty() && Clock::now() - idle_since >= idle_limit) break;  // idle: close
      continue;
    }
    idle_since = Clock::now();
    pending->request.set_producer_id(producer_id_);
    pending->request.set_sequence(next_sequence_++);
    pending->request.mutable_events()->Swap(batch.mutable_events());
    pending->bytes = pending->request.ByteSizeLong();
    reporter_.sent_.fetch_add(taken, std::memory_order_relaxed);
    {
      std::lock_guard lock(mutex_);
      if (window_.empty()) last_progress_ = Clock::now();
      window_.push_back(pending);
      window_bytes_ += pending->bytes;
    }
    written_.push_back(pending->request.sequence());
    writable = stream->Write(pending->request);
  }
  if (writable) stream->WritesDone();  // the server acks what it has and ends the stream
  {
    // A failed Write means the call is over, and the reader's Read returns false with it (the
    // status says why). WaitOnStream cancels the stream when it must end otherwise: a stop, the
    // drain's end, or no ack for too long.
    std::unique_lock lock(mutex_);
    WaitOnStream(lock, [&] { return reader_done_; }, &context);
  }
  reader.join();
  grpc::Status status = stream->Finish();
  SetContext(nullptr);
  *peer = context.peer();
  std::lock_guard lock(mutex_);
  *mismatch = mismatch_;
  *progressed = progressed_;
  if (stalled_ && mismatch_.empty()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "no acknowledgement for " + Seconds(options.deadline));
  }
  return status;
}

void Reporter::PublishLane::ReadAcks(Stream* stream, grpc::ClientContext* context) {
  analytics::PublishAck ack;
  while (stream->Read(&ack)) {
    std::shared_ptr<const Pending> pending;
    {
      std::lock_guard lock(mutex_);
      if (window_.empty() || ack.sequence() != window_.front()->request.sequence()) {
        mismatch_ = "the server acknowledged batch " + std::to_string(ack.sequence()) +
                    (window_.empty() ? std::string(", none was unacknowledged")
                                     : ", expected " +
                                           std::to_string(window_.front()->request.sequence()));
      } else {
        const uint64_t events = window_.front()->request.events_size();
        const uint64_t counted = ack.accepted() + ack.duplicates() + ack.rejected();
        if (counted != events) {
          mismatch_ = "the server acknowledged " + std::to_string(counted) + " of " +
                      std::to_string(events) + " events of batch " +
                      std::to_string(ack.sequence()) + " (" + std::to_string(ack.accepted()) +
                      " accepted, " + std::to_string(ack.duplicates()) + " duplicates, " +
                      std::to_string(ack.rejected()) + " rejected)";
        } else {
          pending = std::move(window_.front());
          window_.pop_front();
          window_bytes_ -= pending->bytes;
          progressed_ = true;
          last_progress_ = Clock::now();
        }
      }
      if (!pending) {
        // The batch stays in the window and is re-sent on the next stream.
        context->TryCancel();
        break;
      }
    }
    changed_.notify_all();
    CountAnswer(ack.accepted(), ack.duplicates(), ack.rejected(), ack.errors(), pending->lines,
                "batch");
  }
  {
    std::lock_guard lock(mutex_);
    reader_done_ = true;
  }
  changed_.notify_all();
}

void Reporter::PublishLane::Refused(const std::string& what, const std::string& message) {
  // A message the server cannot parse is named by its position in the stream ("message #N",
  // 0-based): its batch's input lines say where to look. The batches acknowledged before it
  // were counted; the window fails when the delivery stops.
  std::string where;
  unsigned long long position = 0;
  std::vector<uint64_t> lines;
  {
    std::lock_guard lock(mutex_);
    const bool named = std::sscanf(message.c_str(), "message #%llu", &position) == 1 &&
                       position < written_.size();
    for (const auto& pending : window_) {
      if (named && pending->request.sequence() != written_[position]) continue;
      lines.insert(lines.end(), pending->lines.begin(), pending->lines.end());
    }
    if (named && !lines.empty()) where = "message #" + std::to_string(position) + " carried ";
    if (!named) where = "the unacknowledged batches carried ";
  }
  uint64_t first = UINT64_MAX, last = 0;
  for (uint64_t line : lines) {
    if (line == 0) continue;
    first = std::min(first, line);
    last = std::max(last, line);
  }
  if (last == 0) {
    where.clear();
  } else {
    where += last == first ? "input line " + std::to_string(first)
                           : "input lines " + std::to_string(first) + "-" + std::to_string(last);
  }
  reporter_.Stop("the server refused the events (" + what + "); retrying cannot fix this" +
                 (where.empty() ? "" : " (" + where + ")"));
}

Reporter::Reporter(std::shared_ptr<grpc::Channel> channel, DeliveryOptions options)
    : channel_(std::move(channel)),
      stub_(analytics::AnalyticsService::NewStub(channel_)),
      options_(std::move(options)),
      id_prefix_(RandomIdPrefix()) {
  options_.streams = std::max(options_.streams, 1);
  for (int i = 0; i < options_.streams; ++i) {
    queues_.push_back(std::make_unique<EventQueue>(
        std::max<size_t>(options_.queue_events / static_cast<size_t>(options_.streams), 1)));
  }
  options_.batch_events = std::max<size_t>(options_.batch_events, 1);
  options_.stream_events = std::max(options_.stream_events, options_.batch_events);
  options_.window_batches = std::max<size_t>(options_.window_batches, 1);
  batch_bytes_.store(options_.batch_bytes);
  std::random_device seed;
  for (int i = 0; i < options_.streams; ++i) {
    if (options_.protocol == Protocol::kPublish) {
      lanes_.push_back(std::make_unique<PublishLane>(*this, *queues_[static_cast<size_t>(i)],
                                                     seed(), ProducerId(i)));
    } else {
      lanes_.push_back(std::make_unique<Lane>(*this, *queues_[static_cast<size_t>(i)], seed()));
    }
    threads_.emplace_back([lane = lanes_.back().get()] { lane->Run(); });
  }
  if (options_.interrupted != nullptr) watcher_ = std::thread([this] { WatchInterrupt(); });
}

Reporter::~Reporter() {
  if (!finished_) {
    Stop("the reporter was destroyed before Finish()");
    for (std::thread& thread : threads_) thread.join();
    StopWatcher();
  }
}

std::string Reporter::ProducerId(int lane) const { return id_prefix_ + "-" + std::to_string(lane); }

bool Reporter::Submit(analytics::EventData event, uint64_t line) {
  if (event.event_id().empty()) {
    event.set_event_id(id_prefix_ + "-" +
                       std::to_string(next_id_.fetch_add(1, std::memory_order_relaxed)));
  }
  const size_t bytes = EventBytes(event);
  // A session's events go to one lane, so they reach the server in the order given (its
  // history attributes a session's events to the session's first one); events without a
  // session are spread over the lanes.
  const size_t lane = (event.session_id().empty() ? static_cast<size_t>(next_lane_.fetch_add(1))
                                                  : std::hash<std::string>()(event.session_id())) %
                      queues_.size();
  if (!draining() && queues_[lane]->Push(QueuedEvent{std::move(event), line, bytes})) return true;
  // After an interruption the event is not taken (the input stops before it); after a stop
  // it fails.
  if (stopped_.load() || !draining()) GiveUp(1, {line});
  return false;
}

DeliveryStats Reporter::Finish() {
  for (const auto& queue : queues_) queue->Close();
  for (std::thread& thread : threads_) thread.join();
  StopWatcher();
  finished_ = true;
  return stats();
}

void Reporter::StopWatcher() {
  {
    std::lock_guard lock(watch_mutex_);
    watch_done_ = true;
  }
  watch_wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

void Reporter::WatchInterrupt() {
  std::unique_lock lock(watch_mutex_);
  // A signal handler cannot notify a condition variable: the flag is polled.
  while (!watch_done_ && !options_.interrupted->load()) {
    watch_wake_.wait_for(lock, std::chrono::milliseconds(20));
  }
  if (watch_done_) return;
  BeginDrain();
  const auto deadline = Clock::now() + options_.drain;
  if (watch_wake_.wait_until(lock, deadline, [this] { return watch_done_; })) return;
  // The drain's time is up: what is still queued or unacknowledged is given up on.
  drain_expired_.store(true);
  std::vector<uint64_t> lines;
  size_t dropped = 0;
  for (const auto& queue : queues_) dropped += queue->Abort(&lines);
  GiveUp(dropped, lines);
  for (const auto& lane : lanes_) lane->Cancel();
}

void Reporter::BeginDrain() {
  draining_.store(true);
  // Submit fails from now on; the lanes send what is queued.
  for (const auto& queue : queues_) queue->Close();
}

void Reporter::GiveUp(uint64_t events, const std::vector<uint64_t>& lines) {
  if (events == 0) return;
  if (stopped_.load() || !draining()) {
    failed_.fetch_add(events, std::memory_order_relaxed);
  } else {
    unacknowledged_.fetch_add(events, std::memory_order_relaxed);
  }
  for (uint64_t line : lines) NoteUnacknowledgedLine(line);
}

void Reporter::NoteUnacknowledgedLine(uint64_t line) {
  if (line == 0) return;
  uint64_t current = first_unacknowledged_line_.load();
  while ((current == 0 || line < current) &&
         !first_unacknowledged_line_.compare_exchange_weak(current, line)) {
  }
}

DeliveryStats Reporter::stats() const {
  DeliveryStats stats;
  stats.sent = sent_.load(std::memory_order_relaxed);
  stats.accepted = accepted_.load(std::memory_order_relaxed);
  stats.duplicates = duplicates_.load(std::memory_order_relaxed);
  stats.rejected = rejected_.load(std::memory_order_relaxed);
  stats.failed = failed_.load(std::memory_order_relaxed);
  stats.retries = retries_.load(std::memory_order_relaxed);
  stats.ack_mismatches = ack_mismatches_.load(std::memory_order_relaxed);
  stats.unacknowledged = unacknowledged_.load(std::memory_order_relaxed);
  stats.interrupted = draining();
  stats.first_unacknowledged_line = first_unacknowledged_line_.load();
  return stats;
}

std::string Reporter::fatal_error() const {
  std::lock_guard lock(mutex_);
  return fatal_error_;
}

void Reporter::Stop(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    if (fatal_error_.empty()) fatal_error_ = reason;
  }
  stopped_.store(true);
  std::vector<uint64_t> lines;
  size_t dropped = 0;
  for (const auto& queue : queues_) dropped += queue->Abort(&lines);
  GiveUp(dropped, lines);
}

size_t Reporter::LowerBatchBytes(size_t server_limit, bool* lowered) {
  // 7/8 of the server's limit leaves room for what a message holds beside its events (the
  // producer id, the sequence, the fields' tags).
  const size_t target = std::max<size_t>(server_limit - server_limit / 8, 1);
  size_t current = batch_bytes_.load();
  while (target < current && !batch_bytes_.compare_exchange_weak(current, target)) {
  }
  *lowered = target < current;
  if (*lowered) {
    Log("the server takes messages of at most " + std::to_string(server_limit) +
        " bytes (its --max-message-bytes), less than --batch-bytes " +
        std::to_string(options_.batch_bytes) + ": batches are now at most " +
        std::to_string(target) + " bytes, and what it refused is sent again in smaller ones");
  }
  return batch_bytes_.load();
}

void Reporter::Log(const std::string& message) {
  if (!options_.log) return;
  std::lock_guard lock(mutex_);
  options_.log(message);
}

}  // namespace rta::reporter
