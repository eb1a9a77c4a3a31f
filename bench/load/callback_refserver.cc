// callback_refserver: the fan-out of bench/go/refserver written on gRPC C++'s callback API, as
// the measured comparison issue 14 asks for (`load_driver --scenario fanout-go --server-binary
// build/release/bench/load/callback_refserver`). Like the Go server it is deliberately the
// simplest idiomatic design, not a product: every subscriber's reactor sits in one set under one
// mutex and a ticker thread starts each one's write every tick. It answers whether gRPC's own
// threading (its callback executor instead of our completion-queue threads) sends a delivered
// update for less CPU than analytics_server does on the same library.
//
// It serves only what the benchmark needs: SubscribeMetrics and SubscribeMetricBatches (an
// initial snapshot, then the requested series every tick; a subscriber whose write is still in
// flight gets the newest tick once it completes, like analytics_server's conflation),
// ReportEvent and ReportEventBatches (counted), GetMetrics (events_total).
//
// Command line: --listen HOST:PORT (port 0: any free port), --tick-ms N, and --grpc-arg
// NAME=VALUE (repeatable; an integer value is passed as an integer) to measure transport
// arguments. Any other "--flag value" pair is analytics_server's and ignored. Once listening it
// writes "event=listening address=HOST port=N" to stderr.
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "analytics.grpc.pb.h"

namespace {

using analytics::MetricUpdate;
using analytics::MetricUpdateBatch;

struct Series {
  std::string metric;
  analytics::Window window;
};

std::vector<Series> SeriesOf(const analytics::SubscriptionRequest& request) {
  std::vector<std::string> metrics(request.metric_types().begin(), request.metric_types().end());
  if (metrics.empty()) metrics.push_back("events_total");
  std::vector<analytics::Window> windows;
  for (int w : request.windows()) {
    if (w != analytics::WINDOW_UNSPECIFIED) windows.push_back(static_cast<analytics::Window>(w));
  }
  if (windows.empty()) windows.push_back(analytics::WINDOW_TOTAL);
  std::vector<Series> out;
  for (const std::string& m : metrics) {
    for (analytics::Window w : windows) out.push_back({m, w});
  }
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Ticked {
 public:
  virtual ~Ticked() = default;
  virtual void Tick() = 0;
};

// What every handler shares. The ticker holds `mu` while it walks `subscribers`, and a reactor
// leaves the set (under `mu`) before it is deleted, so the ticker never touches a freed one.
struct Hub {
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> sequence{0};
  std::mutex mu;
  std::unordered_set<Ticked*> subscribers;

  double Value(const std::string& metric) const {
    return metric == "events_total" ? static_cast<double>(events.load()) : 0;
  }
  void Updates(const std::vector<Series>& series, analytics::UpdateKind kind,
               std::vector<MetricUpdate>* out) const {
    const uint64_t seq = sequence.load();
    const int64_t now = NowMs();
    for (const Series& s : series) {
      MetricUpdate& u = out->emplace_back();
      u.set_metric_type(s.metric);
      u.set_value(Value(s.metric));
      u.set_window(s.window);
      u.set_sequence(seq);
      u.set_epoch(1);
      u.set_kind(kind);
      u.set_timestamp(now / 1000);
      u.set_timestamp_ms(now);
    }
  }
};

// One subscriber. Message is MetricUpdate (one write per update) or MetricUpdateBatch (one
// write per tick). Thread safety: mu_ guards the queue and the flags; gRPC runs OnWriteDone and
// OnCancel on its callback threads, Tick runs on the ticker thread. Server-side reactions are
// never run inline by StartWrite in gRPC 1.51, so holding mu_ across StartWrite is safe.
template <class Message>
class Subscriber final : public grpc::ServerWriteReactor<Message>, public Ticked {
 public:
  Subscriber(Hub& hub, const analytics::SubscriptionRequest& request)
      : hub_(hub), series_(SeriesOf(request)) {
    std::vector<MetricUpdate> initial;
    hub_.Updates(series_, analytics::UPDATE_KIND_SNAPSHOT, &initial);
    MetricUpdate& end = initial.emplace_back();
    end.set_kind(analytics::UPDATE_KIND_SNAPSHOT_END);
    end.set_sequence(hub_.sequence.load());
    end.set_epoch(1);
    {
      std::lock_guard lock(mu_);
      Enqueue(std::move(initial), &initial_);
      WriteNextLocked();
    }
    // Not under mu_: the ticker takes hub_.mu, then mu_. No reaction can run (and free this)
    // before the constructor returns: gRPC holds a reactor's operations until it is bound.
    std::lock_guard hub_lock(hub_.mu);
    hub_.subscribers.insert(this);
  }

  void Tick() override {  // on the ticker thread, hub_.mu held
    std::vector<MetricUpdate> updates;
    hub_.Updates(series_, analytics::UPDATE_KIND_DELTA, &updates);
    std::lock_guard lock(mu_);
    if (finished_) return;
    if (writing_ && !latest_.empty()) {
      // Latest wins: a tick that has not started writing is replaced by the newest (the
      // initial snapshot, in initial_, is never dropped: its end marker says the client joined).
      latest_.clear();
    }
    Enqueue(std::move(updates), &latest_);
    if (!writing_) WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      std::lock_guard hub_lock(hub_.mu);
      hub_.subscribers.erase(this);
    }
    delete this;
  }

 private:
  static void Enqueue(std::vector<MetricUpdate> updates, std::deque<Message>* queue) {
    if constexpr (std::is_same_v<Message, MetricUpdateBatch>) {
      MetricUpdateBatch& batch = queue->emplace_back();
      for (MetricUpdate& u : updates) *batch.add_updates() = std::move(u);
    } else {
      for (MetricUpdate& u : updates) queue->push_back(std::move(u));
    }
  }

  void WriteNextLocked() {
    if (finished_ || writing_) return;
    std::deque<Message>& queue = initial_.empty() ? latest_ : initial_;
    if (queue.empty()) return;
    in_flight_ = std::move(queue.front());
    queue.pop_front();
    writing_ = true;
    this->StartWrite(&in_flight_);
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    initial_.clear();
    latest_.clear();
    this->Finish(status);
  }

  Hub& hub_;
  const std::vector<Series> series_;
  std::mutex mu_;
  std::deque<Message> initial_;  // the initial snapshot, written first, in full
  std::deque<Message> latest_;   // the newest tick not yet written
  Message in_flight_;
  bool writing_ = false;
  bool finished_ = false;
};

// ReportEvent and ReportEventBatches: count what arrives, answer the count at the end.
template <class Message>
class Counter final : public grpc::ServerReadReactor<Message> {
 public:
  Counter(Hub& hub, analytics::EventResponse* response) : hub_(hub), response_(response) {
    this->StartRead(&message_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      response_->set_accepted(accepted_);
      this->Finish(grpc::Status::OK);
      return;
    }
    uint64_t n = 1;
    if constexpr (std::is_same_v<Message, analytics::EventBatch>) n = message_.events_size();
    accepted_ += n;
    hub_.events.fetch_add(n, std::memory_order_relaxed);
    this->StartRead(&message_);
  }
  void OnDone() override { delete this; }

 private:
  Hub& hub_;
  analytics::EventResponse* response_;
  Message message_;
  uint64_t accepted_ = 0;
};

class Service final : public analytics::AnalyticsService::CallbackService {
 public:
  explicit Service(Hub& hub) : hub_(hub) {}

  grpc::ServerWriteReactor<MetricUpdate>* SubscribeMetrics(
      grpc::CallbackServerContext*, const analytics::SubscriptionRequest* request) override {
    return new Subscriber<MetricUpdate>(hub_, *request);
  }
  grpc::ServerWriteReactor<MetricUpdateBatch>* SubscribeMetricBatches(
      grpc::CallbackServerContext*, const analytics::SubscriptionRequest* request) override {
    return new Subscriber<MetricUpdateBatch>(hub_, *request);
  }
  grpc::ServerReadReactor<analytics::EventData>* ReportEvent(
      grpc::CallbackServerContext*, analytics::EventResponse* response) override {
    return new Counter<analytics::EventData>(hub_, response);
  }
  grpc::ServerReadReactor<analytics::EventBatch>* ReportEventBatches(
      grpc::CallbackServerContext*, analytics::EventResponse* response) override {
    return new Counter<analytics::EventBatch>(hub_, response);
  }
  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* context,
                                       const analytics::MetricsQuery*,
                                       analytics::MetricsSnapshot* snapshot) override {
    MetricUpdate* u = snapshot->add_metrics();
    u->set_metric_type("events_total");
    u->set_value(hub_.Value("events_total"));
    u->set_window(analytics::WINDOW_TOTAL);
    u->set_kind(analytics::UPDATE_KIND_SNAPSHOT);
    u->set_epoch(1);
    snapshot->set_sequence(hub_.sequence.load());
    snapshot->set_epoch(1);
    snapshot->set_timestamp_ms(NowMs());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  Hub& hub_;
};

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "callback_refserver: " << message << "\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:50051";
  int tick_ms = 1000;
  std::vector<std::pair<std::string, std::string>> grpc_args;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Fail(flag + ": missing value");
    const std::string value = argv[i + 1];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--tick-ms") {
      tick_ms = std::atoi(value.c_str());
      if (tick_ms <= 0) Fail("--tick-ms: expected a positive number, got '" + value + "'");
    } else if (flag == "--grpc-arg") {
      const size_t eq = value.find('=');
      if (eq == std::string::npos) Fail("--grpc-arg: expected NAME=VALUE, got '" + value + "'");
      grpc_args.emplace_back(value.substr(0, eq), value.substr(eq + 1));
    }  // else: analytics_server's flags, not ours
  }
  Hub hub;
  Service service(hub);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  for (const auto& [name, value] : grpc_args) {
    const bool integer =
        !value.empty() && value.find_first_not_of("-0123456789") == std::string::npos;
    if (integer) {
      builder.AddChannelArgument(name, std::stoi(value));
    } else {
      builder.AddChannelArgument(name, value);
    }
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) Fail("cannot listen on " + listen);

  // SIGTERM and SIGINT end the process through sigwait on the main thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::atomic<bool> stop{false};
  std::thread ticker([&] {
    auto next = std::chrono::steady_clock::now();
    while (!stop.load()) {
      next += std::chrono::milliseconds(tick_ms);
      std::this_thread::sleep_until(next);
      hub.sequence.fetch_add(1);
      std::lock_guard lock(hub.mu);
      for (Ticked* s : hub.subscribers) s->Tick();
    }
  });
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::fprintf(stderr, "event=listening address=%s port=%d\n", host.c_str(), port);
  std::fflush(stderr);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  stop = true;
  ticker.join();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
