#include "server/http/events_endpoint.h"

#include <nlohmann/json.hpp>

#include "proto/event_json.h"
#include "server/ingest_call.h"
#include "server/ingest_journal.h"

namespace rta::server::http {
namespace {

using nlohmann::json;

// The batch a body is read into: one per thread, cleared and reused. A cleared protobuf message
// keeps its events and their strings' buffers, so a request costs no malloc per event, as the
// gRPC ingest streams cost none with the message each call reuses (with a fresh batch per
// request, malloc and free were about 17% of the server's samples at 50 events per request).
// Threading: each HTTP thread has its own; Handle runs to its end on one thread, and nothing
// keeps a pointer into the batch past it. Bounded: after a body of more than kKeptBatchEvents
// events or kKeptBatchBytes bytes the batch is freed, so a thread keeps at most what a body of
// that size made.
constexpr size_t kKeptBatchEvents = 1'000;
constexpr size_t kKeptBatchBytes = 256 * 1024;

class ThreadBatch {
 public:
  explicit ThreadBatch(std::string_view body)
      : batch_(Reused()), large_(body.size() > kKeptBatchBytes) {
    batch_.Clear();
  }
  ~ThreadBatch() {
    if (large_ || static_cast<size_t>(batch_.events_size()) > kKeptBatchEvents) {
      analytics::EventBatch().Swap(&batch_);  // the grown one is freed here
    }
  }
  ThreadBatch(const ThreadBatch&) = delete;
  ThreadBatch& operator=(const ThreadBatch&) = delete;

  analytics::EventBatch& operator*() { return batch_; }

 private:
  static analytics::EventBatch& Reused() {
    thread_local analytics::EventBatch batch;
    return batch;
  }
  analytics::EventBatch& batch_;
  const bool large_;
};

std::vector<std::string> SplitKeys(std::string_view list) {
  std::vector<std::string> keys;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view key = list.substr(0, comma);
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
    if (!key.empty()) keys.emplace_back(key);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return keys;
}

Reply Refusal(unsigned status, std::string_view message, int64_t retry_after_s = 0) {
  Reply reply;
  reply.status = status;
  reply.body = EventsEndpoint::ErrorJson(message);
  reply.retry_after_s = retry_after_s;
  return reply;
}

unsigned HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return 400;
    default:
      return 500;
  }
}

int64_t RetrySeconds(int64_t retry_after_ms) {
  return std::max<int64_t>(1, (retry_after_ms + 999) / 1000);
}

// The media type without parameters ("text/plain;charset=UTF-8" -> "text/plain"), lower case.
std::string MediaType(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type;
}

}  // namespace

EventsEndpoint::EventsEndpoint(ServiceState& state)
    : state_(state),
      site_keys_(SplitKeys(state.config.http_site_keys)),
      per_address_(state.config.http_events_per_second_per_address, 100'000),
      per_site_(state.config.http_events_per_second_per_site, 10'000) {}

std::string EventsEndpoint::ErrorJson(std::string_view message) {
  json document = {{"error", std::string(message)}};
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Reply> EventsEndpoint::Authenticate(const EventsRequest& request,
                                                  auth::Principal* principal) {
  const bool listed_key =
      !request.site_key.empty() &&
      std::find(site_keys_.begin(), site_keys_.end(), request.site_key) != site_keys_.end();
  if (!request.site_key.empty() && !site_keys_.empty() && !listed_key) {
    return Refusal(403, "site key '" + std::string(request.site_key.substr(0, 64)) +
                            "' is not one of --http-site-keys");
  }
  const bool tokens_required = state_.auth != nullptr && state_.auth->enabled();
  if (!tokens_required) return std::nullopt;
  if (request.authorization.has_value()) {
    const grpc::Status status = state_.auth->CheckHeader(*request.authorization, true,
                                                         MethodName(Method::kReportEventBatches),
                                                         state_.clock.NowMs(), principal);
    if (status.ok()) return std::nullopt;
    state_.metrics.AddAuthRefused(Method::kReportEventBatches, status.error_code());
    return Refusal(HttpStatusOf(status.error_code()), status.error_message());
  }
  if (listed_key) return std::nullopt;
  state_.metrics.AddAuthRefused(Method::kReportEventBatches, grpc::StatusCode::UNAUTHENTICATED);
  return Refusal(401,
                 "this server requires an API token (Authorization: Bearer TOKEN) or a site key "
                 "(?site=KEY, one of --http-site-keys)");
}

std::optional<Reply> EventsEndpoint::TakeRate(const EventsRequest& request,
                                              const auth::Principal& principal, size_t events) {
  const int64_t now_ms = state_.clock.NowMs();
  int64_t retry_after_ms = 0;
  if (!per_address_.Take(request.address, events, now_ms, &retry_after_ms)) {
    return Refusal(429,
                   "client " + std::string(request.address) + " is over its limit of " +
                       std::to_string(per_address_.rate()) +
                       " events/s (--http-events-per-second-per-address); retry in " +
                       std::to_string(retry_after_ms) + " ms",
                   RetrySeconds(retry_after_ms));
  }
  if (!request.site_key.empty() &&
      !per_site_.Take(request.site_key, events, now_ms, &retry_after_ms)) {
    return Refusal(429,
                   "site key '" + std::string(request.site_key.substr(0, 64)) +
                       "' is over its limit of " + std::to_string(per_site_.rate()) +
                       " events/s (--http-events-per-second-per-site); retry in " +
                       std::to_string(retry_after_ms) + " ms",
                   RetrySeconds(retry_after_ms));
  }
  if (grpc::Status status = state_.TakeEvents(principal, events); !status.ok()) {
    return Refusal(429, status.error_message(), 1);
  }
  return std::nullopt;
}

Reply EventsEndpoint::Handle(const EventsRequest& request) {
  if (state_.shutting_down.load(std::memory_order_relaxed)) {
    return Refusal(503, "server shutting down; nothing was counted, retry on another server", 1);
  }
  const std::string media_type = MediaType(request.content_type);
  if (media_type != "application/json" && media_type != "text/plain") {
    return Refusal(415, "Content-Type must be application/json or text/plain (a JSON body), got '" +
                            std::string(request.content_type.substr(0, 100)) + "'");
  }
  auth::Principal principal;
  if (std::optional<Reply> refused = Authenticate(request, &principal)) return *refused;

  // Every element is read into the batch at its body position (an unreadable one keeps what
  // could be read of it, for its error message): the log record is the batch, with the
  // positions not counted in `skipped`, as for a ReportEventBatches message.
  ThreadBatch reused(request.body);
  analytics::EventBatch& batch = *reused;
  const events::ParsedEvents parsed =
      events::ParseEventsJson(request.body, state_.config.max_batch_events, &batch);
  if (parsed.invalid_json) return Refusal(400, "body: " + parsed.error + "; nothing was counted");
  if (!parsed.error.empty()) return Refusal(400, "body: " + parsed.error);
  const size_t count = parsed.count;
  if (count > state_.config.max_batch_events) {
    return Refusal(413, "body: " + std::to_string(count) + " events, limit " +
                            std::to_string(state_.config.max_batch_events) +
                            " (--max-batch-events); nothing was counted");
  }
  if (std::optional<Reply> refused = TakeRate(request, principal, count)) return *refused;
  std::string why;
  const bool journaled = state_.log != nullptr;
  if (journaled && !JournalAccepts(state_, &why)) return Refusal(503, why, 1);

  EventTally tally;
  std::string message_bytes;  // outlives the record, which only views it
  storage::IngestRecord record;
  record.kind = storage::RecordKind::kEventBatch;
  uint64_t durable_needed = 0;
  {
    // As in IngestCall::Consume: the events and their record are one ingest section.
    std::optional<agg::Aggregator::IngestSection> section;
    if (journaled) section.emplace(state_.aggregator.EnterIngest());
    for (size_t i = 0; i < count; ++i) {
      const analytics::EventData& event = batch.events(static_cast<int>(i));
      if (!parsed.unreadable[i].empty()) {
        tally.RejectUnreadable(event, parsed.unreadable[i]);
        record.skipped.push_back(static_cast<uint32_t>(i));
      } else if (!tally.Ingest(state_, event) && journaled) {
        record.skipped.push_back(static_cast<uint32_t>(i));
      }
    }
    if (journaled && tally.response().accepted() > 0) {
      record.ingest_ms = state_.clock.NowMs();
      record.accepted = static_cast<uint32_t>(tally.response().accepted());
      batch.SerializeToString(&message_bytes);
      record.message = message_bytes;
      durable_needed = AppendToJournal(state_, record);
    }
    if (journaled && tally.response().duplicates() > 0) {
      // Their originals may still be on their way to the disk.
      durable_needed = std::max(durable_needed, JournalTail(state_));
    }
  }
  tally.FlushMetrics(state_.metrics);
  if (state_.push_subscribers.load(std::memory_order_relaxed) > 0) state_.request_early_tick();

  const analytics::EventResponse& counts = tally.response();
  // In the order of EventResponse's fields (json is a std::map: it would sort them).
  nlohmann::ordered_json answer = {{"accepted", counts.accepted()},
                                   {"duplicates", counts.duplicates()},
                                   {"rejected", counts.rejected()},
                                   {"errors", nlohmann::ordered_json::array()}};
  for (const std::string& error : counts.errors()) answer["errors"].push_back(error);
  Reply reply;
  reply.status = 200;
  reply.body = answer.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  reply.durable_lsn = durable_needed;
  return reply;
}

}  // namespace rta::server::http
