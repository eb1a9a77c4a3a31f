#include "dashboard_client/subscription.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace rta::dashboard {
namespace {

using Clock = std::chrono::steady_clock;

bool RetryCannotFix(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED ||
         code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::UNIMPLEMENTED;
}

}  // namespace

std::string DescribeFailure(const grpc::Status& status, const std::string& servers, CallKind kind) {
  const std::string code = client::StatusCodeName(status.error_code());
  const bool query = kind == CallKind::kQuery;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE: {
      // Connection failures carry gRPC's internal details; say what they mean. The server's
      // own messages (such as "server shutting down") are worth showing as they are.
      const std::string& message = status.error_message();
      if (message.find("DNS resolution failed") != std::string::npos) {
        return "cannot resolve the server address " + servers + " (" + code + ")";
      }
      if (message.find("failed to connect") != std::string::npos ||
          message.find("connections to all backends failing") != std::string::npos ||
          message.find("Connection refused") != std::string::npos) {
        return "server unreachable at " + servers + " (" + code + ")";
      }
      return "lost the server at " + servers + " (" + code + ": " + message + ")";
    }
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      // The advice first: on an 80-column screen the server's own words may be cut off.
      return "the server refused the token; check --token (" + code + ": " +
             status.error_message() + ")";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return std::string("the server refused the ") + (query ? "query" : "subscription") + " (" +
             code + ": " + status.error_message() + ")";
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
      if (query) {
        return "the server cannot answer this query (" + code + ": " + status.error_message() + ")";
      }
      [[fallthrough]];
    default:
      return (query ? "the query to " + servers + " failed ("
                    : "stream to " + servers + " ended (") +
             code + ": " + status.error_message() + ")";
  }
}

Subscription::Subscription(std::shared_ptr<grpc::Channel> channel, SubscriptionOptions options)
    : stub_(analytics::AnalyticsService::NewStub(std::move(channel))),
      options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

Subscription::~Subscription() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  wake_.notify_all();
  thread_.join();
}

SubscriptionStatus Subscription::Drain(std::vector<analytics::MetricUpdate>* updates) {
  std::lock_guard lock(mutex_);
  for (analytics::MetricUpdate& update : queue_) updates->push_back(std::move(update));
  queue_.clear();
  SubscriptionStatus status = status_;
  status_.reset = false;
  return status;
}

void Subscription::ReconnectNow() {
  std::lock_guard lock(mutex_);
  reconnect_now_ = true;
  if (context_ != nullptr) context_->TryCancel();
  wake_.notify_all();
}

void Subscription::SetStatus(LinkState link, const std::string& message,
                             std::chrono::steady_clock::time_point retry_at) {
  std::lock_guard lock(mutex_);
  status_.link = link;
  status_.message = message;
  status_.retry_at = retry_at;
}

bool Subscription::WaitUntil(std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(mutex_);
  wake_.wait_until(lock, until, [&] { return stopping_ || reconnect_now_; });
  reconnect_now_ = false;
  return !stopping_;
}

void Subscription::Run() {
  std::mt19937_64 rng(std::random_device{}());
  int failures = 0;
  const std::string servers = client::DescribeServers(options_.channel);
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      reconnect_now_ = false;
    }
    bool received_any = false;
    const grpc::Status status = RunStream(&received_any);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    if (received_any) failures = 0;
    const std::string message = DescribeFailure(status, servers);
    if (RetryCannotFix(status.error_code())) {
      SetStatus(LinkState::kRefused, message);
      if (!WaitUntil(Clock::time_point::max())) return;
      continue;
    }
    // Exponential backoff with jitter over the upper half.
    const double ceiling = std::min<double>(static_cast<double>(options_.max_backoff.count()),
                                            static_cast<double>(options_.initial_backoff.count()) *
                                                std::pow(2.0, std::min(failures, 20)));
    ++failures;
    const auto delay = std::chrono::milliseconds(
        static_cast<int64_t>(std::uniform_real_distribution<double>(ceiling / 2, ceiling)(rng)));
    const auto retry_at = Clock::now() + delay;
    SetStatus(LinkState::kReconnecting, message, retry_at);
    if (!WaitUntil(retry_at)) return;
  }
}

grpc::Status Subscription::RunStream(bool* received_any) {
  grpc::ClientContext context;
  client::AddCredentials(options_.channel, &context);
  analytics::SubscriptionRequest request = options_.request;
  if (resume_epoch_ != 0) {
    request.set_resume_epoch(resume_epoch_);
    // One tick back: a stream that broke in the middle of a tick's updates may have missed
    // some of them, and repeating a value is harmless.
    request.set_resume_after_sequence(resume_sequence_ > 0 ? resume_sequence_ - 1 : 0);
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return grpc::Status::CANCELLED;
    context_ = &context;
    if (status_.link != LinkState::kReconnecting) status_.link = LinkState::kConnecting;
  }
  // The batched method: one message per tick instead of one per changed series.
  std::unique_ptr<grpc::ClientReader<analytics::MetricUpdateBatch>> reader =
      stub_->SubscribeMetricBatches(&context, request);
  analytics::MetricUpdateBatch batch;
  bool first = true;
  while (reader->Read(&batch)) {
    *received_any = true;
    std::lock_guard lock(mutex_);
    for (analytics::MetricUpdate& update : *batch.mutable_updates()) {
      if (update.epoch() != 0) {
        if (update.epoch() != resume_epoch_) resume_sequence_ = 0;
        resume_epoch_ = update.epoch();
      }
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT ||
          update.kind() == analytics::UPDATE_KIND_DELTA) {
        resume_sequence_ = std::max(resume_sequence_, update.sequence());
      }
      if (first) {
        first = false;
        status_.link = LinkState::kConnected;
        status_.message.clear();
        // The server could not resume: what we hold is stale, a full snapshot follows.
        if (!update.recovered()) {
          queue_.clear();
          status_.reset = true;
        }
      }
      queue_.push_back(std::move(update));
    }
  }
  grpc::Status status = reader->Finish();
  std::lock_guard lock(mutex_);
  context_ = nullptr;
  return status;
}

}  // namespace rta::dashboard
