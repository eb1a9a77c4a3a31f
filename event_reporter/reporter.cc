#include "event_reporter/reporter.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
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

// One sending thread: a stream at a time, and the events of the current stream until the
// server acknowledges them.
class Reporter::Lane {
 public:
  Lane(Reporter& reporter, uint64_t seed) : reporter_(reporter), rng_(seed) {}

  void Run();

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
  std::chrono::milliseconds NextBackoff();
  void SleepUnlessStopped(std::chrono::milliseconds duration);
  void DropPending();
  std::string LinesText(size_t from, size_t to) const;

  Reporter& reporter_;
  std::mt19937_64 rng_;
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
    if (reporter_.stopped_.load()) {
      DropPending();
      return;
    }
    if (events_ == 0 && !reporter_.queue_.WaitNonEmpty()) return;  // closed and drained
    analytics::EventResponse response;
    std::string peer;
    std::optional<analytics::EventResponse> trailer;
    const grpc::Status status = SendOneStream(&response, &peer, &trailer);
    const uint64_t counted = response.accepted() + response.duplicates() + response.rejected();
    if (status.ok() && counted == events_) {
      Acknowledge(response);
      continue;
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
    const std::chrono::milliseconds backoff = NextBackoff();
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
  // analytics_server names a message it cannot parse by its position in the stream ("message
  // #N ...", 0-based), and puts what it counted before it in the trailer. When both are there
  // and agree with what was sent, the events before that message are acknowledged and only
  // the rest fail; the message's input lines say where to look.
  std::string where;
  unsigned long long position = 0;
  size_t before = 0, size = 0;  // events before message #position, and in it
  bool located = false;
  if (std::sscanf(message.c_str(), "message #%llu", &position) == 1) {
    if (reporter_.options_.batched && position < batches_.size()) {
      for (size_t i = 0; i < position; ++i) before += batches_[i].events_size();
      size = batches_[position].events_size();
      located = true;
    } else if (!reporter_.options_.batched && position < events_) {
      before = position;
      size = 1;
      located = true;
    }
  }
  if (located) {
    const std::string lines = LinesText(before, before + size);
    if (!lines.empty()) where = "message #" + std::to_string(position) + " carried " + lines;
    const uint64_t counted =
        trailer ? trailer->accepted() + trailer->duplicates() + trailer->rejected() : 0;
    if (trailer && counted == before) {
      CountResponse(*trailer);
      events_ -= before;  // what is left fails when the delivery stops
      where += std::string(where.empty() ? "" : "; ") + "the " + std::to_string(before) +
               " events before it were counted";
    }
  } else {
    const std::string lines = LinesText(0, lines_.size());
    if (!lines.empty()) where = "that stream carried " + lines;
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
  grpc::Status status = options.batched
                            ? Stream(reporter_.stub_->ReportEventBatches(&context, response))
                            : Stream(reporter_.stub_->ReportEvent(&context, response));
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
        reporter_.queue_.PopBatch(std::min(options.batch_events, options.stream_events - events_),
                                  options.batch_bytes, stream_end, options.linger, &batch, &lines_);
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
  reporter_.accepted_.fetch_add(response.accepted(), std::memory_order_relaxed);
  reporter_.duplicates_.fetch_add(response.duplicates(), std::memory_order_relaxed);
  reporter_.rejected_.fetch_add(response.rejected(), std::memory_order_relaxed);
  // The server names a refused event by its position in the stream ("event #12 (id x): field:
  // reason"); the position finds the input line.
  for (const std::string& error : response.errors()) {
    unsigned long long position = 0;
    int consumed = 0;
    std::string text = error;
    if (std::sscanf(error.c_str(), "event #%llu%n", &position, &consumed) == 1 &&
        position < lines_.size() && lines_[position] > 0) {
      text = "line " + std::to_string(lines_[position]) + error.substr(consumed);
    }
    reporter_.Log("rejected: " + text);
  }
  if (response.rejected() > static_cast<uint64_t>(response.errors_size())) {
    reporter_.Log("rejected: " + std::to_string(response.rejected() - response.errors_size()) +
                  " more events in the same stream (the server names the first " +
                  std::to_string(response.errors_size()) + ")");
  }
}

std::chrono::milliseconds Reporter::Lane::NextBackoff() {
  // Exponential, capped, with jitter over its upper half so that many clients a server restart
  // disconnected at once do not come back at once.
  const DeliveryOptions& options = reporter_.options_;
  const double ceiling = std::min<double>(static_cast<double>(options.max_backoff.count()),
                                          static_cast<double>(options.initial_backoff.count()) *
                                              std::pow(2.0, std::min(failures_ - 1, 20)));
  const double delay = std::uniform_real_distribution<double>(ceiling / 2, ceiling)(rng_);
  return std::chrono::milliseconds(static_cast<int64_t>(delay));
}

void Reporter::Lane::SleepUnlessStopped(std::chrono::milliseconds duration) {
  const auto until = Clock::now() + duration;
  while (!reporter_.stopped_.load() && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
}

void Reporter::Lane::DropPending() {
  reporter_.failed_.fetch_add(events_, std::memory_order_relaxed);
  batches_.clear();
  lines_.clear();
  events_ = 0;
}

Reporter::Reporter(std::shared_ptr<grpc::Channel> channel, DeliveryOptions options)
    : channel_(std::move(channel)),
      stub_(analytics::AnalyticsService::NewStub(channel_)),
      options_(std::move(options)),
      queue_(std::max<size_t>(options_.queue_events, 1)),
      id_prefix_(RandomIdPrefix()) {
  options_.streams = std::max(options_.streams, 1);
  options_.batch_events = std::max<size_t>(options_.batch_events, 1);
  options_.stream_events = std::max(options_.stream_events, options_.batch_events);
  std::random_device seed;
  for (int i = 0; i < options_.streams; ++i) {
    lanes_.push_back(std::make_unique<Lane>(*this, seed()));
    threads_.emplace_back([lane = lanes_.back().get()] { lane->Run(); });
  }
}

Reporter::~Reporter() {
  if (!finished_) {
    Stop("the reporter was destroyed before Finish()");
    for (std::thread& thread : threads_) thread.join();
  }
}

bool Reporter::Submit(analytics::EventData event, uint64_t line) {
  if (event.event_id().empty()) {
    event.set_event_id(id_prefix_ + "-" +
                       std::to_string(next_id_.fetch_add(1, std::memory_order_relaxed)));
  }
  const size_t bytes = event.ByteSizeLong() + 4;  // + the repeated field's tag and length
  if (queue_.Push(QueuedEvent{std::move(event), line, bytes})) return true;
  failed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

DeliveryStats Reporter::Finish() {
  queue_.Close();
  for (std::thread& thread : threads_) thread.join();
  finished_ = true;
  return stats();
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
  failed_.fetch_add(queue_.Abort(), std::memory_order_relaxed);
}

void Reporter::Log(const std::string& message) {
  if (!options_.log) return;
  std::lock_guard lock(mutex_);
  options_.log(message);
}

}  // namespace rta::reporter
