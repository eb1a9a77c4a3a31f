// load_driver: end-to-end load against a real analytics_server process on loopback.
//
// Scenarios (each bounded by time and count): ingest-single, ingest-batched (10 and 100 events
// per message), fanout (subscribers x ticks), latency (event send -> first MetricUpdate that
// includes it), analyze (AnalyzeSession round trips), http-ingest (POST /v1/events, 1 and 50
// events per request, beside gRPC with the same per-message counts), fanout-web (gRPC-Web
// subscriptions on the HTTP port beside gRPC ones, pair by pair). The server runs as a separate
// process; its CPU time and RSS come from /proc, so every throughput figure has a CPU cost beside
// it.
//
// The client is built to cost less than the server: ingest messages are serialized once and
// only their fixed-width event ids are patched per send, and each scenario drives all its
// streams from one completion queue on one thread.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "analytics.grpc.pb.h"
#include "bench/load/process_stats.h"
#include "bench/load/secure_access.h"
#include "tests/support/nats_cluster.h"

namespace rta::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// prefix + number. (Not `literal + std::to_string()`: GCC 12 warns falsely, -Wrestrict.)
std::string Tagged(const char* prefix, uint64_t n) {
  std::string out(prefix);
  out += std::to_string(n);
  return out;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double ClientCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[index];
}

struct Options {
  std::string server_binary = RTA_SERVER_BINARY;
  std::string scenario = "all";
  double seconds = 5;
  bool smoke = false;
  double latency_rate = 0;  // events/s for the latency scenario; 0: derived (see --help)
  std::string output_dir;
  std::string server_flags;          // appended to every server's command line
  double history_fill_seconds = 60;  // join-history: ingest before the joins
  double return_wait_seconds = 60;   // join-history, churn: how long to watch RSS fall back
  // Durable ingest (publish, publish-latency, recovery, checkpoint-stall).
  int publish_streams = 16;
  int publish_window = 8;
  int publish_batch = 0;    // 0: 100 and 1000
  double publish_rate = 0;  // publish-latency, events/s; 0: half of publish's best
  uint64_t recovery_events = 1'000'000;
  // access: set for the TLS + token half of each pair (ingest and fan-out only).
  const SecureAccess* secure = nullptr;
  // fanout-go: the grpc-go reference server (bench/go/build.sh builds it) and the rounds.
#ifdef RTA_GO_REFSERVER
  std::string reference_server = RTA_GO_REFSERVER;
#else
  std::string reference_server;
#endif
  int rounds = 3;
  std::string fanout_load = "both";  // fanout-go: cpu (2,000 subscribers), rss (10,000), both
};

struct Result {
  std::string scenario;
  std::string variant;
  double rate = 0;           // units per second
  std::string unit;          // "events/s", "updates/s", "actions/s"
  double server_cpu_us = 0;  // server CPU microseconds per unit
  double client_cpu_us = 0;  // load generator CPU microseconds per unit
  json extra = json::object();
};

// The credentials of every channel NewChannel makes: plaintext, except while a
// ClientCredentialsScope holds a secure server's. Written only on the main thread while no
// channel is being made (before a scenario's load threads start and after they end).
std::shared_ptr<grpc::ChannelCredentials> g_credentials;

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, int index) {
  grpc::ChannelArguments args;
  args.SetInt("rta.bench.channel", index);  // distinct args: a connection per channel
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(
      address, g_credentials != nullptr ? g_credentials : grpc::InsecureChannelCredentials(),
      args);
}

// With options.secure: the server's flags for TLS, and while the scope lives, channels that
// carry TLS and a token made on that server (SecureAccess::Bootstrap). Nothing otherwise.
std::string AccessFlags(const Options& options) {
  return options.secure != nullptr ? " " + options.secure->ServerFlags() : "";
}
class ClientCredentialsScope {
 public:
  ClientCredentialsScope(const Options& options, const ServerProcess& server) {
    if (options.secure != nullptr) g_credentials = options.secure->Bootstrap(server.address());
  }
  ~ClientCredentialsScope() { g_credentials = nullptr; }
  ClientCredentialsScope(const ClientCredentialsScope&) = delete;
  ClientCredentialsScope& operator=(const ClientCredentialsScope&) = delete;
};
// " TLS+token" for the secure half of a pair.
std::string AccessSuffix(const Options& options) {
  return options.secure != nullptr ? ", TLS+token" : "";
}

// A realistic event with a fixed-width id, serialized once; PatchIds writes new ids in place.
class MessageTemplate {
 public:
  MessageTemplate(int events_per_message, bool batched) {
    analytics::EventBatch batch;
    const int64_t now = WallMs();
    for (int i = 0; i < events_per_message; ++i) {
      analytics::EventData& e = *batch.add_events();
      e.set_event_id(std::string(kIdWidth, '0'));
      e.set_event_type(i % 10 == 0 ? "click" : "page_view");
      e.set_timestamp_ms(now);
      e.set_session_id(Tagged("s", i % 97));
      e.set_visitor_id(Tagged("v", i % 1013));
      e.set_page(Tagged("/products/", i % 50));
      e.set_referrer(i % 3 == 0 ? "google.com" : "");
      e.set_country(i % 2 == 0 ? "DE" : "US");
      e.set_device(i % 3 == 0 ? "mobile" : "desktop");
    }
    bytes_ = batched ? batch.SerializeAsString() : batch.events(0).SerializeAsString();
    const std::string zeros(kIdWidth, '0');
    for (size_t pos = bytes_.find(zeros); pos != std::string::npos;
         pos = bytes_.find(zeros, pos + kIdWidth)) {
      offsets_.push_back(pos);
    }
  }
  // A copy of the message with the next ids: 4 hex digits of stream, 12 of counter.
  grpc::ByteBuffer Next(uint64_t stream, uint64_t* counter) {
    for (size_t offset : offsets_) {
      WriteHex(&bytes_[offset], stream, 4);
      WriteHex(&bytes_[offset + 4], (*counter)++, kIdWidth - 4);
    }
    grpc::Slice slice(bytes_);
    return grpc::ByteBuffer(&slice, 1);
  }

 private:
  static void WriteHex(char* out, uint64_t value, size_t width) {
    for (size_t i = width; i-- > 0; value >>= 4) out[i] = "0123456789abcdef"[value & 15];
  }
  static constexpr size_t kIdWidth = 16;
  std::string bytes_;
  std::vector<size_t> offsets_;
};

// ingest: `streams` client streams in a closed loop, each sending messages until time is up.
Result RunIngest(const Options& options, const std::string& variant, int streams,
                 int events_per_message, bool batched) {
  ServerProcess server(options.server_binary, 1000, AccessFlags(options));
  if (!server.ok()) throw std::runtime_error("server did not start");
  const ClientCredentialsScope credentials(options, server);
  const std::string method = batched ? "/analytics.AnalyticsService/ReportEventBatches"
                                     : "/analytics.AnalyticsService/ReportEvent";
  const int channels = std::max(1, streams / 4);
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < channels; ++i) {
    stubs.push_back(std::make_unique<grpc::GenericStub>(NewChannel(server.address(), i)));
  }
  grpc::CompletionQueue cq;
  enum Step { kStarted, kWrote, kWritesDone, kRead, kFinished };
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
    MessageTemplate message{1, false};
    uint64_t counter = 0;
    grpc::ByteBuffer response;
    grpc::Status status;
    uint64_t messages = 0;
    Step step = kStarted;
  };
  std::vector<std::unique_ptr<Stream>> all;
  const auto duration = std::chrono::duration<double>(options.seconds);
  const ProcessSample before = SampleProcess(server.pid());
  const double client_before = ClientCpuSeconds();
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(duration);
  for (int i = 0; i < streams; ++i) {
    auto s = std::make_unique<Stream>();
    s->message = MessageTemplate(events_per_message, batched);
    s->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    s->call = stubs[i % channels]->PrepareCall(&s->context, method, &cq);
    s->call->StartCall(s.get());
    all.push_back(std::move(s));
  }
  uint64_t accepted = 0, rejected = 0;
  int finished = 0;
  void* tag;
  bool ok;
  while (finished < streams && cq.Next(&tag, &ok)) {
    Stream& s = *static_cast<Stream*>(tag);
    switch (s.step) {
      case kStarted:
      case kWrote:
        if (ok && Clock::now() < stop_at) {
          s.step = kWrote;
          ++s.messages;
          s.call->Write(s.message.Next(static_cast<uint64_t>(&s - all[0].get()), &s.counter), &s);
        } else {
          s.step = kWritesDone;
          s.call->WritesDone(&s);
        }
        break;
      case kWritesDone:
        s.step = kRead;
        s.call->Read(&s.response, &s);
        break;
      case kRead:
        if (ok) {
          analytics::EventResponse response;
          if (grpc::SerializationTraits<analytics::EventResponse>::Deserialize(&s.response,
                                                                               &response)
                  .ok()) {
            accepted += response.accepted();
            rejected += response.rejected() + response.duplicates();
          }
        }
        s.step = kFinished;
        s.call->Finish(&s.status, &s);
        break;
      case kFinished:
        ++finished;
        if (!s.status.ok()) {
          std::fprintf(stderr, "stream failed: %s\n", s.status.error_message().c_str());
        }
        break;
    }
  }
  const double elapsed = Seconds(Clock::now() - start);
  const ProcessSample after = SampleProcess(server.pid());
  Result r;
  r.scenario = batched ? "ingest-batched" : "ingest-single";
  r.variant = variant + AccessSuffix(options);
  r.unit = "events/s";
  r.rate = accepted / elapsed;
  r.server_cpu_us =
      (after.cpu_seconds - before.cpu_seconds) * 1e6 / std::max<uint64_t>(1, accepted);
  r.client_cpu_us = (ClientCpuSeconds() - client_before) * 1e6 / std::max<uint64_t>(1, accepted);
  r.extra = {{"accepted", accepted},
             {"not_accepted", rejected},
             {"seconds", elapsed},
             {"streams", streams},
             {"events_per_message", events_per_message}};
  return r;
}

// http-ingest: POST /v1/events on `connections` keep-alive HTTP/1.1 connections (Boost.Beast,
// one client thread each), closed loop, `per_request` events per JSON body, until time is up.
// The same kind of events as the gRPC scenarios (unique ids, a page view with a visitor, a
// session and a page), written as the JSON a browser's tracker would send.
Result RunHttpIngest(const Options& options, int connections, int per_request, int http_threads) {
  namespace beast = boost::beast;
  namespace bhttp = boost::beast::http;
  ServerProcess server(options.server_binary, 1000,
                       "--http-listen 127.0.0.1:0 --http-events-per-second-per-address 0 "
                       "--http-threads " +
                           std::to_string(http_threads));
  if (!server.ok() || server.http_port() == 0) throw std::runtime_error("server did not start");
  std::atomic<uint64_t> accepted{0}, refused{0};
  const auto duration = std::chrono::duration<double>(options.seconds);
  const ProcessSample before = SampleProcess(server.pid());
  const double client_before = ClientCpuSeconds();
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(duration);
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      boost::asio::io_context io;
      beast::tcp_stream stream(io);
      beast::error_code ec;
      stream.connect(
          boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                         static_cast<unsigned short>(server.http_port())),
          ec);
      if (ec) return;
      beast::flat_buffer buffer;
      uint64_t counter = 0;
      std::string body;
      while (Clock::now() < stop_at) {
        body.assign("[");
        for (int i = 0; i < per_request; ++i) {
          const std::string n = std::to_string(counter++);
          if (i > 0) body.push_back(',');
          body += R"({"event_id":"h)" + std::to_string(c) + "-" + n +
                  R"(","event_type":"page_view","visitor_id":"v)" + n + R"(","session_id":"s)" + n +
                  R"(","page":"/products/)" + std::to_string(counter % 50) +
                  R"(","referrer":"google.com","device":"mobile"})";
        }
        body.push_back(']');
        bhttp::request<bhttp::string_body> request(bhttp::verb::post, "/v1/events", 11);
        request.set(bhttp::field::host, "127.0.0.1");
        request.set(bhttp::field::content_type, "application/json");
        request.body() = body;
        request.prepare_payload();
        bhttp::write(stream, request, ec);
        if (ec) break;
        bhttp::response<bhttp::string_body> response;
        bhttp::read(stream, buffer, response, ec);
        if (ec) break;
        if (response.result_int() != 200) {
          refused += per_request;
          continue;
        }
        const json counts = json::parse(response.body(), nullptr, false);
        if (counts.is_object()) accepted += counts.value("accepted", uint64_t{0});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double elapsed = Seconds(Clock::now() - start);
  const ProcessSample after = SampleProcess(server.pid());
  Result r;
  r.scenario = "http-ingest";
  r.variant = std::to_string(per_request) + " per request, " + std::to_string(connections) +
              " connections, " + std::to_string(http_threads) + " HTTP threads";
  r.unit = "events/s";
  r.rate = static_cast<double>(accepted) / elapsed;
  r.server_cpu_us =
      (after.cpu_seconds - before.cpu_seconds) * 1e6 / std::max<uint64_t>(1, accepted.load());
  r.client_cpu_us =
      (ClientCpuSeconds() - client_before) * 1e6 / std::max<uint64_t>(1, accepted.load());
  r.extra = {{"accepted", accepted.load()},
             {"refused", refused.load()},
             {"seconds", elapsed},
             {"connections", connections},
             {"events_per_request", per_request}};
  return r;
}

// Sends `rate` events/s as batches of 10 from its own thread until stopped (fan-out's steady
// ingest and the latency scenario's open-loop load). Records the send time of every 10th event.
class SteadyIngest {
 public:
  SteadyIngest(const std::string& address, double rate) : address_(address), rate_(rate) {
    thread_ = std::thread([this] { Run(); });
  }
  ~SteadyIngest() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // (cumulative events after this message, send time)
  const std::vector<std::pair<uint64_t, Clock::time_point>>& sends() const { return sends_; }

 private:
  void Run() {
    auto stub = analytics::AnalyticsService::NewStub(NewChannel(address_, 1000));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    analytics::EventResponse response;
    auto writer = stub->ReportEventBatches(&context, &response);
    analytics::EventBatch batch;
    for (int i = 0; i < 10; ++i) {
      auto* e = batch.add_events();
      e->set_event_type("page_view");
      e->set_visitor_id(Tagged("v", i));
      e->set_session_id("steady");
      e->set_page("/steady");
    }
    const auto interval = std::chrono::duration<double>(10.0 / rate_);
    auto next = Clock::now();
    uint64_t sent = 0;
    while (!stop_) {
      next += std::chrono::duration_cast<Clock::duration>(interval);
      std::this_thread::sleep_until(next);  // open loop: the schedule does not wait for acks
      const int64_t now = WallMs();
      for (auto& e : *batch.mutable_events()) {
        e.set_event_id(Tagged("steady-", sent++));
        e.set_timestamp_ms(now);
      }
      if (!writer->Write(batch)) break;
      sends_.emplace_back(sent, Clock::now());
    }
    writer->WritesDone();
    writer->Finish();
  }

  std::string address_;
  double rate_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::pair<uint64_t, Clock::time_point>> sends_;
};

// What a fan-out measurement subscribes to, and against which server.
struct FanoutLoad {
  int subscribers = 1000;
  int connections = 0;  // 0: one per 500 subscribers
  // SubscribeMetricBatches (a tick's updates in one message) instead of SubscribeMetrics.
  bool batched = false;
  // Every metric of the 1m window, as dashboard_client asks, instead of `metrics` in
  // WINDOW_TOTAL.
  bool dashboards = false;
  std::vector<std::string> metrics = {"events_total", "page_views", "unique_visitors"};
  int tick_ms = 100;
  double ingest_rate = 2000;  // events/s reported beside the subscribers
  std::string server_binary;  // "" = options.server_binary; else a reference (its label)
  std::string server_label;
};

// The measured part of a fan-out run, once every subscriber has joined: half a second to
// settle, then options.seconds with `measuring` set (the client counts updates only then),
// between two samples of the server's /proc and of the client's CPU.
struct FanoutWindow {
  ProcessSample before, after;
  double elapsed = 0;
  double client_cpu = 0;
};
FanoutWindow MeasureFanout(const Options& options, pid_t server_pid, std::atomic<bool>* measuring) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  FanoutWindow window;
  window.before = SampleProcess(server_pid);
  const double client_before = ClientCpuSeconds();
  const auto start = Clock::now();
  measuring->store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  measuring->store(false);
  window.elapsed = Seconds(Clock::now() - start);
  window.after = SampleProcess(server_pid);
  window.client_cpu = ClientCpuSeconds() - client_before;
  return window;
}

// What a fan-out run counted, into the Result both fan-out scenarios report: updates per
// second, server and client CPU per update, whether every subscriber saw every tick, server RSS
// per subscriber above `idle` (the server with its ingest, before any subscriber).
struct FanoutCounts {
  int subscribers = 0;
  int tick_ms = 0;
  uint64_t delivered = 0;
  uint64_t messages = 0;
  uint64_t min_sequences = 0;  // the fewest distinct ticks a subscriber saw while measuring
};
Result FanoutResult(const FanoutWindow& window, const ProcessSample& idle, const FanoutCounts& c) {
  const uint64_t per = std::max<uint64_t>(1, c.delivered);
  const double ticks = window.elapsed * 1000 / c.tick_ms;
  Result r;
  r.unit = "updates/s";
  r.rate = c.delivered / window.elapsed;
  r.server_cpu_us = (window.after.cpu_seconds - window.before.cpu_seconds) * 1e6 / per;
  r.client_cpu_us = window.client_cpu * 1e6 / per;
  r.extra = {
      {"subscribers", c.subscribers},
      {"tick_ms", c.tick_ms},
      {"server_cpu_user_us",
       (window.after.cpu_user_seconds - window.before.cpu_user_seconds) * 1e6 / per},
      {"messages_per_second", c.messages / window.elapsed},
      {"updates_per_message", static_cast<double>(c.delivered) / std::max<uint64_t>(1, c.messages)},
      {"ticks", ticks},
      {"min_ticks_seen_by_a_subscriber", c.min_sequences},
      {"every_subscriber_kept_up", c.min_sequences + 2 >= static_cast<uint64_t>(ticks)},
      {"server_rss_bytes_per_subscriber",
       c.subscribers > 0
           ? static_cast<double>(window.after.rss_bytes - idle.rss_bytes) / c.subscribers
           : 0.0}};
  return r;
}

// fanout: `load.subscribers` streams over a few connections, a tick every `load.tick_ms`, steady
// ingest beside. The server may be a reference implementation (bench/go/refserver) that takes
// the same command line and ignores the flags it does not know.
Result RunFanout(const Options& options, const FanoutLoad& load) {
  const int subscribers = load.subscribers;
  const bool batched = load.batched;
  const bool dashboards = load.dashboards;
  const int kTickMs = load.tick_ms;
  // A small de-duplication table (64 Ki ids, 512 KiB): the default one (32 MiB, paged in as ids
  // arrive) would grow RSS during the measurement and be counted against the subscribers.
  ServerProcess server(load.server_binary.empty() ? options.server_binary : load.server_binary,
                       kTickMs,
                       "--max-subscribers 20000 --max-streams 30000 --workers 2 "
                       "--dedupe-capacity-log2 16 "
                       // every subscriber comes from this one address (and token)
                       "--max-streams-per-peer 30000 --token-max-streams 30000 "
                       "--token-max-subscriptions 30000" +
                           AccessFlags(options) + " " + options.server_flags);
  if (!server.ok()) throw std::runtime_error("server did not start");
  const ClientCredentialsScope credentials(options, server);
  // The baseline for RSS per subscriber: the server with its steady ingest, no subscribers yet.
  SteadyIngest ingest(server.address(), load.ingest_rate);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const ProcessSample idle = SampleProcess(server.pid());
  const int channels = load.connections > 0 ? load.connections : std::max(1, subscribers / 500);
  std::vector<std::unique_ptr<analytics::AnalyticsService::Stub>> stubs;
  for (int i = 0; i < channels; ++i) {
    stubs.push_back(analytics::AnalyticsService::NewStub(NewChannel(server.address(), i)));
  }
  analytics::SubscriptionRequest request;
  if (dashboards) {
    request.add_windows(analytics::WINDOW_1M);
  } else {
    for (const std::string& m : load.metrics) request.add_metric_types(m);
    request.add_windows(analytics::WINDOW_TOTAL);
  }
  struct Sub {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReader<analytics::MetricUpdate>> reader;
    std::unique_ptr<grpc::ClientAsyncReader<analytics::MetricUpdateBatch>> batch_reader;
    analytics::MetricUpdate update;
    analytics::MetricUpdateBatch batch;
    grpc::Status status;
    bool started = false;
    std::atomic<bool> joined{false};  // has its initial snapshot; read by the main thread
    uint64_t last_sequence = 0;
    uint64_t sequences = 0;  // distinct ticks seen while measuring
    bool finishing = false;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Sub>> subs;
  for (int i = 0; i < subscribers; ++i) {
    auto s = std::make_unique<Sub>();
    s->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    if (batched) {
      s->batch_reader =
          stubs[i % channels]->AsyncSubscribeMetricBatches(&s->context, request, &cq, s.get());
    } else {
      s->reader = stubs[i % channels]->AsyncSubscribeMetrics(&s->context, request, &cq, s.get());
    }
    subs.push_back(std::move(s));
  }
  std::atomic<bool> measuring{false};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> messages{0};
  int finished = 0;
  std::thread client([&] {
    void* tag;
    bool ok;
    const auto take = [&](Sub& s, const analytics::MetricUpdate& update) {
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) {
        s.joined = true;
        return;
      }
      if (measuring.load(std::memory_order_relaxed)) {
        delivered.fetch_add(1, std::memory_order_relaxed);
        if (update.sequence() != s.last_sequence) ++s.sequences;
      }
      s.last_sequence = update.sequence();
    };
    while (finished < subscribers && cq.Next(&tag, &ok)) {
      Sub& s = *static_cast<Sub*>(tag);
      if (s.finishing) {
        ++finished;
        continue;
      }
      if (!ok) {
        s.finishing = true;
        if (batched) {
          s.batch_reader->Finish(&s.status, &s);
        } else {
          s.reader->Finish(&s.status, &s);
        }
        continue;
      }
      if (s.started) {  // a message arrived
        if (measuring.load(std::memory_order_relaxed)) {
          messages.fetch_add(1, std::memory_order_relaxed);
        }
        if (batched) {
          for (const analytics::MetricUpdate& update : s.batch.updates()) take(s, update);
        } else {
          take(s, s.update);
        }
      }
      s.started = true;
      if (batched) {
        s.batch_reader->Read(&s.batch, &s);
      } else {
        s.reader->Read(&s.update, &s);
      }
    }
  });
  // Wait until every subscriber has its initial snapshot (bounded).
  const auto join_deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < join_deadline) {
    size_t joined = 0;
    for (const auto& s : subs) joined += s->joined.load();
    if (joined == subs.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const FanoutWindow window = MeasureFanout(options, server.pid(), &measuring);
  ingest.Stop();
  for (auto& s : subs) s->context.TryCancel();
  client.join();
  // Read once the client thread is done with the subscribers (measuring stopped before).
  uint64_t min_sequences = UINT64_MAX;
  for (const auto& s : subs) min_sequences = std::min(min_sequences, s->sequences);
  Result r = FanoutResult(window, idle,
                          {.subscribers = subscribers,
                           .tick_ms = kTickMs,
                           .delivered = delivered.load(),
                           .messages = messages.load(),
                           .min_sequences = min_sequences});
  r.scenario = "fanout";
  r.variant = std::to_string(subscribers) +
              (dashboards ? " dashboards (all metrics, 1m)" : " subscribers") +
              (batched ? ", batched" : "") + AccessSuffix(options);
  if (!load.server_label.empty()) r.variant += ", " + load.server_label;
  r.extra["connections"] = channels;
  return r;
}

// fanout-web: the fan-out of RunFanout (SubscribeMetricBatches, the same request and steady
// ingest) to browsers: `subscribers` gRPC-Web streams on the HTTP port, each its own HTTP/1.1
// connection (a browser's fetch), read by one client thread that splits the chunked answer into
// gRPC-Web frames and parses every batch. Measured as RunFanout measures: updates delivered per
// second and server CPU per update, with every subscriber's ticks counted.
Result RunGrpcWebFanout(const Options& options, const FanoutLoad& load) {
  namespace beast = boost::beast;
  namespace bhttp = boost::beast::http;
  const int kTickMs = load.tick_ms;
  ServerProcess server(options.server_binary, kTickMs,
                       "--max-subscribers 20000 --workers 2 --dedupe-capacity-log2 16 "
                       "--http-listen 127.0.0.1:0 --http-max-connections 20000 "
                       "--http-max-connections-per-address 20000 " +
                           options.server_flags);
  if (!server.ok() || server.http_port() == 0) throw std::runtime_error("server did not start");
  SteadyIngest ingest(server.address(), load.ingest_rate);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const ProcessSample idle = SampleProcess(server.pid());
  analytics::SubscriptionRequest request;
  if (load.dashboards) {
    request.add_windows(analytics::WINDOW_1M);
  } else {
    for (const std::string& m : load.metrics) request.add_metric_types(m);
    request.add_windows(analytics::WINDOW_TOTAL);
  }
  // The request as a browser sends it: one gRPC-Web frame (flag, big-endian length, message).
  const std::string message = request.SerializeAsString();
  std::string body(5, '\0');
  for (int i = 0; i < 4; ++i) body[1 + i] = static_cast<char>(message.size() >> (24 - 8 * i));
  body += message;

  boost::asio::io_context io;
  std::atomic<bool> measuring{false};
  uint64_t delivered = 0, messages = 0;  // the io thread's, read after it ends
  std::atomic<int> joined{0};
  struct Sub {
    explicit Sub(boost::asio::io_context& io) : stream(io) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::empty_body> parser;
    bhttp::request<bhttp::string_body> request;
    std::function<size_t(uint64_t, beast::string_view, beast::error_code&)> on_chunk;
    std::string data;  // chunk bytes not yet split into frames
    bool joined = false;
    uint64_t last_sequence = 0;
    uint64_t sequences = 0;
  };
  std::vector<std::unique_ptr<Sub>> subs;
  const boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                static_cast<unsigned short>(server.http_port()));
  std::function<void(Sub&)> read = [&](Sub& s) {
    bhttp::async_read_some(s.stream, s.buffer, s.parser,
                           [&, sub = &s](beast::error_code ec, size_t) {
                             if (!ec && !sub->parser.is_done()) read(*sub);
                           });
  };
  analytics::MetricUpdateBatch batch;
  for (int i = 0; i < load.subscribers; ++i) {
    auto s = std::make_unique<Sub>(io);
    Sub& sub = *s;
    sub.parser.body_limit(boost::none);
    sub.on_chunk = [&, sub = &sub](uint64_t, beast::string_view chunk, beast::error_code&) {
      sub->data.append(chunk.data(), chunk.size());
      size_t at = 0;
      while (sub->data.size() - at >= 5) {
        const auto* p = reinterpret_cast<const uint8_t*>(sub->data.data() + at);
        const size_t length =
            (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | p[4];
        if (sub->data.size() - at < 5 + length) break;
        if (p[0] == 0 && batch.ParseFromArray(p + 5, static_cast<int>(length))) {
          if (measuring.load(std::memory_order_relaxed)) ++messages;
          for (const analytics::MetricUpdate& update : batch.updates()) {
            if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) {
              if (!sub->joined) joined.fetch_add(1);
              sub->joined = true;
              continue;
            }
            if (measuring.load(std::memory_order_relaxed)) {
              ++delivered;
              if (update.sequence() != sub->last_sequence) ++sub->sequences;
            }
            sub->last_sequence = update.sequence();
          }
        }
        at += 5 + length;
      }
      sub->data.erase(0, at);
      return chunk.size();
    };
    sub.parser.on_chunk_body(sub.on_chunk);
    sub.request = {bhttp::verb::post, "/analytics.AnalyticsService/SubscribeMetricBatches", 11};
    sub.request.set(bhttp::field::host, "127.0.0.1");
    sub.request.set(bhttp::field::content_type, "application/grpc-web+proto");
    sub.request.set("X-Grpc-Web", "1");
    sub.request.body() = body;
    sub.request.prepare_payload();
    sub.stream.async_connect(endpoint, [&, sub = &sub](beast::error_code ec) {
      if (ec) return;
      bhttp::async_write(sub->stream, sub->request, [&, sub](beast::error_code write_ec, size_t) {
        if (!write_ec) read(*sub);
      });
    });
    subs.push_back(std::move(s));
  }
  std::thread client([&] { io.run(); });
  const auto join_deadline = Clock::now() + std::chrono::seconds(120);
  while (joined.load() < load.subscribers && Clock::now() < join_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const FanoutWindow window = MeasureFanout(options, server.pid(), &measuring);
  ingest.Stop();
  // Closing the sockets ends every read; then the io thread runs out of work.
  boost::asio::post(io, [&] {
    for (auto& s : subs) s->stream.close();
  });
  client.join();
  uint64_t min_sequences = UINT64_MAX;
  for (const auto& s : subs) min_sequences = std::min(min_sequences, s->sequences);
  Result r = FanoutResult(window, idle,
                          {.subscribers = load.subscribers,
                           .tick_ms = kTickMs,
                           .delivered = delivered,
                           .messages = messages,
                           .min_sequences = min_sequences});
  r.scenario = "fanout-web";
  r.variant = std::to_string(load.subscribers) +
              (load.dashboards ? " dashboards (all metrics, 1m)" : " subscribers") +
              ", gRPC-Web batched";
  r.extra["joined"] = joined.load();
  return r;
}

// Every metric in every window (an empty `windows` list is only the server's default window).
analytics::SubscriptionRequest EverySeries() {
  analytics::SubscriptionRequest request;
  for (auto window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                      analytics::WINDOW_TOTAL}) {
    request.add_windows(window);
  }
  return request;
}

// A set of subscriptions read by one thread on one completion queue, for the memory scenarios:
// counts the subscribers that have their whole initial batch (up to SNAPSHOT_END) and ends
// them all on Cancel() (or destruction). Each stream has a deadline, so the thread always ends.
class SubscriberWave {
 public:
  using Stubs = std::vector<std::unique_ptr<analytics::AnalyticsService::Stub>>;
  SubscriberWave(const Stubs& stubs, const analytics::SubscriptionRequest& request, int count,
                 bool batched)
      : batched_(batched) {
    for (int i = 0; i < count; ++i) {
      auto s = std::make_unique<Sub>();
      s->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(600));
      auto& stub = *stubs[i % stubs.size()];
      if (batched) {
        s->batch_reader = stub.AsyncSubscribeMetricBatches(&s->context, request, &cq_, s.get());
      } else {
        s->reader = stub.AsyncSubscribeMetrics(&s->context, request, &cq_, s.get());
      }
      subs_.push_back(std::move(s));
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~SubscriberWave() { Cancel(); }

  size_t joined() const { return joined_.load(); }
  uint64_t updates() const { return updates_.load(); }
  // Waits (bounded) until every subscriber has its initial batch; calls `sample` meanwhile.
  bool WaitJoined(Clock::duration timeout, const std::function<void()>& sample = {}) {
    const auto deadline = Clock::now() + timeout;
    while (joined() < subs_.size() && Clock::now() < deadline) {
      if (sample) sample();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return joined() == subs_.size();
  }
  void Cancel() {
    if (!thread_.joinable()) return;
    for (auto& s : subs_) s->context.TryCancel();
    thread_.join();
    subs_.clear();
  }

 private:
  struct Sub {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReader<analytics::MetricUpdate>> reader;
    std::unique_ptr<grpc::ClientAsyncReader<analytics::MetricUpdateBatch>> batch_reader;
    analytics::MetricUpdate update;
    analytics::MetricUpdateBatch batch;
    grpc::Status status;
    bool started = false;
    bool joined = false;
    bool finishing = false;
  };
  void Run() {
    size_t finished = 0;
    void* tag;
    bool ok;
    const auto take = [&](Sub& s, const analytics::MetricUpdate& update) {
      updates_.fetch_add(1, std::memory_order_relaxed);
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END && !s.joined) {
        s.joined = true;
        joined_.fetch_add(1);
      }
    };
    while (finished < subs_.size() && cq_.Next(&tag, &ok)) {
      Sub& s = *static_cast<Sub*>(tag);
      if (s.finishing) {
        ++finished;
        continue;
      }
      if (!ok) {
        s.finishing = true;
        if (batched_) {
          s.batch_reader->Finish(&s.status, &s);
        } else {
          s.reader->Finish(&s.status, &s);
        }
        continue;
      }
      if (s.started) {
        if (batched_) {
          for (const analytics::MetricUpdate& update : s.batch.updates()) take(s, update);
        } else {
          take(s, s.update);
        }
      }
      s.started = true;
      if (batched_) {
        s.batch_reader->Read(&s.batch, &s);
      } else {
        s.reader->Read(&s.update, &s);
      }
    }
  }

  const bool batched_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Sub>> subs_;
  std::atomic<size_t> joined_{0};
  std::atomic<uint64_t> updates_{0};
  std::thread thread_;
};

double MiB(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// Watches the server's RSS fall back after a load ended: samples once a second for up to
// `wait_seconds`, stopping early once it is within 20% of `baseline`. Returns the last sample
// and sets *seconds to when it got within 20% (or -1 if it did not).
uint64_t WatchReturn(pid_t pid, uint64_t baseline, double wait_seconds, double* seconds) {
  const auto start = Clock::now();
  *seconds = -1;
  uint64_t rss = SampleProcess(pid).rss_bytes;
  while (true) {
    if (static_cast<double>(rss) <= 1.2 * static_cast<double>(baseline)) {
      *seconds = Seconds(Clock::now() - start);
      return rss;
    }
    if (Seconds(Clock::now() - start) >= wait_seconds) return rss;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    rss = SampleProcess(pid).rss_bytes;
  }
}

// join-history: the issue-10 recipe. 2,000 events/s for history_fill_seconds (tick 1 s, so one
// history point per series per second), then 200 plain subscribers (every series, no history)
// for the cost of a plain one; then 50 + 150 subscribers on every series with
// history_seconds = 3600; all leave, RSS is watched falling back; 200 join again and leave.
// RSS figures are in MiB; "per subscriber" = (RSS with them open - RSS before they came) / N.
Result RunJoinHistory(const Options& options, bool batched) {
  ServerProcess server(options.server_binary, 1000,
                       "--workers 2 --dedupe-capacity-log2 16 " + options.server_flags);
  if (!server.ok()) throw std::runtime_error("server did not start");
  const uint64_t fresh = SampleProcess(server.pid()).rss_bytes;
  SteadyIngest ingest(server.address(), 2000);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.history_fill_seconds));
  SubscriberWave::Stubs stubs;
  for (int i = 0; i < 4; ++i) {
    stubs.push_back(analytics::AnalyticsService::NewStub(NewChannel(server.address(), i)));
  }
  const auto join_timeout = std::chrono::seconds(60);
  const int plain_count = 200;
  const analytics::SubscriptionRequest plain_request = EverySeries();
  const uint64_t before_plain = SampleProcess(server.pid()).rss_bytes;
  uint64_t plain_open = 0;
  bool all_joined = true;
  {
    SubscriberWave plain(stubs, plain_request, plain_count, batched);
    all_joined &= plain.WaitJoined(join_timeout);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    plain_open = SampleProcess(server.pid()).rss_bytes;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  analytics::SubscriptionRequest history_request = EverySeries();
  history_request.set_history_seconds(3600);
  const ProcessSample baseline = SampleProcess(server.pid());
  uint64_t peak = baseline.rss_bytes;
  const auto sample_peak = [&] { peak = std::max(peak, SampleProcess(server.pid()).rss_bytes); };
  const int first = options.smoke ? 10 : 50, second = options.smoke ? 30 : 150;
  const auto join_start = Clock::now();
  auto wave1 = std::make_unique<SubscriberWave>(stubs, history_request, first, batched);
  all_joined &= wave1->WaitJoined(join_timeout, sample_peak);
  auto wave2 = std::make_unique<SubscriberWave>(stubs, history_request, second, batched);
  all_joined &= wave2->WaitJoined(join_timeout, sample_peak);
  const double join_seconds = Seconds(Clock::now() - join_start);
  const ProcessSample joined = SampleProcess(server.pid());
  const uint64_t history_updates = wave1->updates() + wave2->updates();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const uint64_t open = SampleProcess(server.pid()).rss_bytes;
  wave1.reset();
  wave2.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const uint64_t left = SampleProcess(server.pid()).rss_bytes;
  double return_seconds = -1;
  const uint64_t returned =
      WatchReturn(server.pid(), baseline.rss_bytes, options.return_wait_seconds, &return_seconds);
  uint64_t rejoined = 0;
  {
    SubscriberWave again(stubs, history_request, first + second, batched);
    all_joined &= again.WaitJoined(join_timeout, sample_peak);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    rejoined = SampleProcess(server.pid()).rss_bytes;
  }
  double return2_seconds = -1;
  const uint64_t returned2 =
      WatchReturn(server.pid(), baseline.rss_bytes, options.return_wait_seconds, &return2_seconds);
  ingest.Stop();
  const int joiners = first + second;
  Result r;
  r.scenario = "join-history";
  r.variant = Tagged("", static_cast<uint64_t>(options.history_fill_seconds));
  r.variant += " s of history, " + std::to_string(first) + "+" + std::to_string(second) +
               " joiners" + (batched ? ", batched" : "");
  r.unit = "joins/s";
  r.rate = joiners / join_seconds;
  r.server_cpu_us = (joined.cpu_seconds - baseline.cpu_seconds) * 1e6 / joiners;
  r.extra = {
      {"all_joined", all_joined},
      {"history_updates_per_joiner", static_cast<double>(history_updates) / joiners},
      {"rss_fresh_mib", MiB(fresh)},
      {"rss_baseline_mib", MiB(baseline.rss_bytes)},
      {"plain_kib_per_subscriber",
       (static_cast<double>(plain_open) - static_cast<double>(before_plain)) / plain_count / 1024},
      {"joiner_kib_per_subscriber",
       (static_cast<double>(open) - static_cast<double>(baseline.rss_bytes)) / joiners / 1024},
      {"rss_peak_during_joins_mib", MiB(peak)},
      {"rss_open_mib", MiB(open)},
      {"rss_after_leave_mib", MiB(left)},
      {"rss_returned_mib", MiB(returned)},
      {"seconds_to_within_20pct", return_seconds},
      {"rss_rejoined_mib", MiB(rejoined)},
      {"rss_returned_after_rejoin_mib", MiB(returned2)},
      {"seconds_to_within_20pct_after_rejoin", return2_seconds}};
  return r;
}

// churn: rounds of subscribers (every series, no history; odd rounds batched) joining and
// leaving while 2,000 events/s come in; then RSS is watched falling back to the idle baseline.
// The baseline is taken after one warm-up round of 100: RSS counts the shared libraries' pages
// too, and the first subscriptions page in ~3 MiB of gRPC and protobuf code that stays resident
// (clean, file-backed) for good; the anonymous part is reported on its own.
Result RunChurn(const Options& options) {
  ServerProcess server(options.server_binary, 100,
                       "--workers 2 --dedupe-capacity-log2 16 " + options.server_flags);
  if (!server.ok()) throw std::runtime_error("server did not start");
  const ProcessSample fresh = SampleProcess(server.pid());
  SteadyIngest ingest(server.address(), 2000);
  SubscriberWave::Stubs stubs;
  for (int i = 0; i < 4; ++i) {
    stubs.push_back(analytics::AnalyticsService::NewStub(NewChannel(server.address(), i)));
  }
  const int rounds = options.smoke ? 2 : 10, per_round = options.smoke ? 100 : 1000;
  const analytics::SubscriptionRequest request = EverySeries();
  bool all_joined = true;
  for (bool batched : {false, true}) {
    SubscriberWave warm_up(stubs, request, 50, batched);
    all_joined &= warm_up.WaitJoined(std::chrono::seconds(60));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const ProcessSample baseline = SampleProcess(server.pid());
  uint64_t peak = baseline.rss_bytes;
  const auto start = Clock::now();
  for (int round = 0; round < rounds; ++round) {
    SubscriberWave wave(stubs, request, per_round, round % 2 == 1);
    all_joined &= wave.WaitJoined(std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few ticks of fan-out
    peak = std::max(peak, SampleProcess(server.pid()).rss_bytes);
  }
  const double elapsed = Seconds(Clock::now() - start);
  const ProcessSample after = SampleProcess(server.pid());
  double return_seconds = -1;
  WatchReturn(server.pid(), baseline.rss_bytes, options.return_wait_seconds, &return_seconds);
  const ProcessSample returned = SampleProcess(server.pid());
  ingest.Stop();
  Result r;
  r.scenario = "churn";
  r.variant = std::to_string(rounds) + " x " + std::to_string(per_round) + " subscribers";
  r.unit = "joins/s";
  r.rate = rounds * per_round / elapsed;
  r.server_cpu_us = (after.cpu_seconds - baseline.cpu_seconds) * 1e6 / (rounds * per_round);
  r.extra = {{"all_joined", all_joined},
             {"rss_fresh_mib", MiB(fresh.rss_bytes)},
             {"rss_baseline_mib", MiB(baseline.rss_bytes)},
             {"rss_anon_baseline_mib", MiB(baseline.rss_anon_bytes)},
             {"rss_peak_mib", MiB(peak)},
             {"rss_after_leave_mib", MiB(after.rss_bytes)},
             {"rss_returned_mib", MiB(returned.rss_bytes)},
             {"rss_anon_returned_mib", MiB(returned.rss_anon_bytes)},
             {"seconds_to_within_20pct", return_seconds}};
  return r;
}

// latency: open-loop ingest at a fixed rate; one subscriber on events_total. An event is
// "included" by the first update whose events_total reaches the event's cumulative count (one
// ordered ingest stream, exact counting), so latency = that update's arrival - the send time.
Result RunLatency(const Options& options, double rate, bool push_on_change) {
  constexpr int kTickMs = 100;
  ServerProcess server(options.server_binary, kTickMs);
  if (!server.ok()) throw std::runtime_error("server did not start");
  auto stub = analytics::AnalyticsService::NewStub(NewChannel(server.address(), 0));
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  request.set_push_on_change(push_on_change);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::duration<double>(options.seconds + 30)));
  auto reader = stub->SubscribeMetrics(&context, request);
  std::vector<std::pair<double, Clock::time_point>> arrivals;
  std::thread subscriber([&] {
    analytics::MetricUpdate update;
    while (reader->Read(&update)) {
      if (update.kind() == analytics::UPDATE_KIND_DELTA)
        arrivals.emplace_back(update.value(), Clock::now());
    }
  });
  const ProcessSample before = SampleProcess(server.pid());
  const double client_before = ClientCpuSeconds();
  SteadyIngest ingest(server.address(), rate);
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  ingest.Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * kTickMs));
  const ProcessSample after = SampleProcess(server.pid());
  context.TryCancel();
  subscriber.join();
  std::vector<double> latencies_ms;
  size_t a = 0;
  for (const auto& [count, sent] : ingest.sends()) {
    while (a < arrivals.size() && arrivals[a].first < static_cast<double>(count)) ++a;
    if (a == arrivals.size()) break;
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(arrivals[a].second - sent).count());
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  Result r;
  r.scenario = "latency";
  const double client_cpu = ClientCpuSeconds() - client_before;
  r.variant = Tagged("", static_cast<uint64_t>(rate));
  r.variant += push_on_change ? " events/s, push_on_change" : " events/s, tick 100 ms";
  r.unit = "events/s";
  const uint64_t events = ingest.sends().empty() ? 0 : ingest.sends().back().first;
  r.rate = events / options.seconds;
  r.server_cpu_us = (after.cpu_seconds - before.cpu_seconds) * 1e6 / std::max<uint64_t>(1, events);
  r.client_cpu_us = client_cpu * 1e6 / std::max<uint64_t>(1, events);
  r.extra = {{"samples", latencies_ms.size()},
             {"p50_ms", Percentile(latencies_ms, 0.50)},
             {"p99_ms", Percentile(latencies_ms, 0.99)},
             {"p999_ms", Percentile(latencies_ms, 0.999)},
             {"max_ms", latencies_ms.empty() ? 0.0 : latencies_ms.back()}};
  return r;
}

// analyze: one AnalyzeSession stream with `window` actions in flight; replies come in order.
Result RunAnalyze(const Options& options, int window) {
  ServerProcess server(options.server_binary, 1000);
  if (!server.ok()) throw std::runtime_error("server did not start");
  auto stub = analytics::AnalyticsService::NewStub(NewChannel(server.address(), 0));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::duration<double>(options.seconds + 30)));
  auto stream = stub->AnalyzeSession(&context);
  std::mutex mutex;
  std::vector<Clock::time_point> send_times;  // by action index
  std::vector<double> latencies_us;
  std::atomic<uint64_t> replies{0};
  std::thread reader([&] {
    analytics::AnalysisResult result;
    uint64_t index = 0;
    while (stream->Read(&result)) {
      if (result.action_sequence() == 0) continue;  // server-initiated
      const auto now = Clock::now();
      std::lock_guard lock(mutex);
      latencies_us.push_back(
          std::chrono::duration<double, std::micro>(now - send_times[index++]).count());
      replies.fetch_add(1, std::memory_order_release);
    }
  });
  const ProcessSample before = SampleProcess(server.pid());
  const double client_before = ClientCpuSeconds();
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(options.seconds));
  analytics::UserAction action;
  const char* types[] = {"page_view", "scroll", "click", "page_view", "add_to_cart"};
  uint64_t sent = 0;
  while (Clock::now() < stop_at) {
    while (sent - replies.load(std::memory_order_acquire) >= static_cast<uint64_t>(window) &&
           Clock::now() < stop_at) {
      std::this_thread::yield();
    }
    if (Clock::now() >= stop_at) break;
    action.set_session_id(Tagged("s", sent % 1000));
    action.set_visitor_id(Tagged("v", sent % 1000));
    action.set_action_type(types[sent % 5]);
    action.set_target(Tagged("/p/", sent % 37));
    action.set_timestamp_ms(WallMs());
    action.set_sequence(sent + 1);
    {
      std::lock_guard lock(mutex);
      send_times.push_back(Clock::now());
    }
    if (!stream->Write(action)) break;
    ++sent;
  }
  stream->WritesDone();
  const double elapsed = Seconds(Clock::now() - start);
  reader.join();
  stream->Finish();
  const ProcessSample after = SampleProcess(server.pid());
  std::sort(latencies_us.begin(), latencies_us.end());
  Result r;
  r.scenario = "analyze";
  r.client_cpu_us =
      (ClientCpuSeconds() - client_before) * 1e6 / std::max<uint64_t>(1, replies.load());
  r.variant = std::to_string(window) + " in flight";
  r.unit = "actions/s";
  r.rate = replies.load() / elapsed;
  r.server_cpu_us =
      (after.cpu_seconds - before.cpu_seconds) * 1e6 / std::max<uint64_t>(1, replies.load());
  r.extra = {{"replies", replies.load()},
             {"p50_us", Percentile(latencies_us, 0.5)},
             {"p99_us", Percentile(latencies_us, 0.99)}};
  return r;
}

// ---------------------------------------------------------------------------------------------
// Durable ingest (issue 11): PublishEvents scenarios.

// A PublishRequest {producer_id, events} serialized once; Next patches the event ids (4 hex
// digits of stream, 12 of counter) and appends the sequence (field 2) as its own field, since
// protobuf fields may come in any order and a varint's width changes with its value.
class PublishTemplate {
 public:
  PublishTemplate(const std::string& producer_id, int events_per_message) {
    analytics::PublishRequest request;
    request.set_producer_id(producer_id);
    const int64_t now = WallMs();
    for (int i = 0; i < events_per_message; ++i) {
      analytics::EventData& e = *request.add_events();
      e.set_event_id(std::string(kIdWidth, '0'));
      e.set_event_type(i % 10 == 0 ? "click" : "page_view");
      e.set_timestamp_ms(now);
      e.set_session_id(Tagged("s", i % 97));
      e.set_visitor_id(Tagged("v", i % 1013));
      e.set_page(Tagged("/products/", i % 50));
      e.set_referrer(i % 3 == 0 ? "google.com" : "");
      e.set_country(i % 2 == 0 ? "DE" : "US");
      e.set_device(i % 3 == 0 ? "mobile" : "desktop");
    }
    bytes_ = request.SerializeAsString();
    const std::string zeros(kIdWidth, '0');
    for (size_t pos = bytes_.find(zeros); pos != std::string::npos;
         pos = bytes_.find(zeros, pos + kIdWidth)) {
      offsets_.push_back(pos);
    }
    base_size_ = bytes_.size();
  }
  grpc::ByteBuffer Next(uint64_t stream, uint64_t* counter, uint64_t sequence) {
    bytes_.resize(base_size_);
    for (size_t offset : offsets_) {
      WriteHex(&bytes_[offset], stream, 4);
      WriteHex(&bytes_[offset + 4], (*counter)++, kIdWidth - 4);
    }
    bytes_.push_back(static_cast<char>(2 << 3));  // field 2, varint
    for (uint64_t v = sequence;; v >>= 7) {
      if (v < 0x80) {
        bytes_.push_back(static_cast<char>(v));
        break;
      }
      bytes_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    }
    grpc::Slice slice(bytes_);
    return grpc::ByteBuffer(&slice, 1);
  }

 private:
  static void WriteHex(char* out, uint64_t value, size_t width) {
    for (size_t i = width; i-- > 0; value >>= 4) out[i] = "0123456789abcdef"[value & 15];
  }
  static constexpr size_t kIdWidth = 16;
  std::string bytes_;
  size_t base_size_ = 0;
  std::vector<size_t> offsets_;
};

struct PublishParams {
  int streams = 16;
  int window = 8;           // closed loop: unacknowledged batches per stream
  int batch = 1000;         // events per PublishRequest
  double rate = 0;          // events/s; > 0: open loop (batches on a schedule, round robin)
  double seconds = 5;       // sending stops after this (a cap when max_events is set)
  uint64_t max_events = 0;  // > 0: stop sending after this many events
  std::string producer_prefix = "bench";
};

struct PublishOutcome {
  uint64_t accepted = 0;
  uint64_t not_accepted = 0;  // rejected + duplicates
  uint64_t duplicate_batches = 0;
  uint64_t acks = 0;
  uint64_t events_sent = 0;
  uint64_t bytes_sent = 0;           // serialized PublishRequests
  double elapsed = 0;                // first send to the last stream's end
  std::vector<double> latencies_ms;  // per batch: send (open loop: scheduled send) -> ack
  std::vector<std::string> errors;
};

// Drives PublishEvents streams from one completion queue on this thread, stream i to
// addresses[i % addresses.size()] (several: cluster nodes that all take ingest). Every stream has
// a deadline; the loop ends by count or at seconds + 30 s, when what is left is cancelled.
PublishOutcome DrivePublish(const std::vector<std::string>& addresses, const PublishParams& p) {
  enum Op { kStart, kWrite, kRead, kFinish };
  struct Stream;
  struct OpTag {
    Stream* stream;
    Op op;
  };
  struct Stream {
    explicit Stream(const std::string& producer, int batch) : message(producer, batch) {}
    grpc::ClientContext context;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
    PublishTemplate message;
    uint64_t index = 0;
    uint64_t counter = 0;
    uint64_t sequence = 0;
    std::deque<Clock::time_point> unacked;  // send times, in order
    std::deque<Clock::time_point> due;      // open loop: scheduled, not yet written
    grpc::ByteBuffer ack;
    grpc::Status status;
    bool started = false, writing = false, closing = false, finished = false;
    OpTag tags[4];
  };
  // A multiple of the addresses, so that stream i's channel (i % channels) is on address
  // i % addresses.size().
  const int targets = static_cast<int>(addresses.size());
  const int channels = (std::max(targets, p.streams / 4) + targets - 1) / targets * targets;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < channels; ++i) {
    stubs.push_back(
        std::make_unique<grpc::GenericStub>(NewChannel(addresses[i % targets], 100 + i)));
  }
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Stream>> streams;
  PublishOutcome out;
  const bool open_loop = p.rate > 0;
  const auto start = Clock::now();
  const auto stop_at =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(p.seconds));
  const auto hard_stop = stop_at + std::chrono::seconds(30);
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(p.seconds + 60));
  int pending = 0;  // operations in flight on the queue
  const std::string run = Tagged("-", static_cast<uint64_t>(WallMs()));
  for (int i = 0; i < p.streams; ++i) {
    auto s = std::make_unique<Stream>(p.producer_prefix + run + Tagged("-", i), p.batch);
    s->index = static_cast<uint64_t>(i);
    for (int op = 0; op < 4; ++op) s->tags[op] = {s.get(), static_cast<Op>(op)};
    s->context.set_deadline(deadline);
    s->call = stubs[i % channels]->PrepareCall(&s->context,
                                               "/analytics.AnalyticsService/PublishEvents", &cq);
    s->call->StartCall(&s->tags[kStart]);
    ++pending;
    streams.push_back(std::move(s));
  }
  uint64_t scheduled_events = 0;
  const auto budget_left = [&](uint64_t events) {
    return p.max_events == 0 || events + static_cast<uint64_t>(p.batch) <= p.max_events;
  };
  const auto try_write = [&](Stream& s) {
    if (!s.started || s.writing || s.closing || s.finished) return;
    const auto now = Clock::now();
    bool send = false;
    Clock::time_point sent_at = now;
    if (open_loop) {
      if (!s.due.empty()) {
        sent_at = s.due.front();
        s.due.pop_front();
        send = true;
      }
    } else {
      send = now < stop_at && s.unacked.size() < static_cast<size_t>(p.window) &&
             budget_left(out.events_sent);
    }
    if (send) {
      grpc::ByteBuffer buffer = s.message.Next(s.index, &s.counter, ++s.sequence);
      out.bytes_sent += buffer.Length();
      out.events_sent += static_cast<uint64_t>(p.batch);
      s.unacked.push_back(sent_at);
      s.writing = true;
      ++pending;
      s.call->Write(buffer, &s.tags[kWrite]);
      return;
    }
    const bool done_sending =
        open_loop ? (now >= stop_at || !budget_left(scheduled_events)) && s.due.empty()
                  : now >= stop_at || !budget_left(out.events_sent);
    if (done_sending) {
      s.closing = true;
      s.writing = true;
      ++pending;
      s.call->WritesDone(&s.tags[kWrite]);
    }
  };
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(open_loop ? p.batch / p.rate : 1.0));
  auto next_due = start;
  size_t round_robin = 0;
  int finished = 0;
  bool cancelled = false;
  while (finished < p.streams || pending > 0) {
    auto now = Clock::now();
    if (now > hard_stop + std::chrono::seconds(30)) {  // cannot happen with deadlines; be safe
      out.errors.push_back("streams did not end; abandoned");
      for (auto& s : streams) s.release();  // NOLINT: leaked on purpose, ops may be pending
      return out;
    }
    if (now > hard_stop && !cancelled) {
      cancelled = true;
      out.errors.push_back("time limit: streams cancelled");
      for (auto& s : streams) s->context.TryCancel();
    }
    if (open_loop) {
      while (next_due <= now && next_due < stop_at && budget_left(scheduled_events)) {
        Stream& s = *streams[round_robin++ % streams.size()];
        s.due.push_back(next_due);
        scheduled_events += static_cast<uint64_t>(p.batch);
        next_due += interval;
        try_write(s);
      }
    }
    if (now >= stop_at || !budget_left(open_loop ? scheduled_events : out.events_sent)) {
      for (auto& s : streams) try_write(*s);  // closes the streams with nothing left to send
    }
    auto wake = now + std::chrono::milliseconds(20);
    if (open_loop && next_due < stop_at) wake = std::min(wake, next_due);
    void* tag = nullptr;
    bool ok = false;
    const auto status = cq.AsyncNext(
        &tag, &ok,
        std::chrono::system_clock::now() +
            std::chrono::duration_cast<std::chrono::system_clock::duration>(wake - now));
    if (status == grpc::CompletionQueue::SHUTDOWN) break;
    if (status == grpc::CompletionQueue::TIMEOUT) continue;
    --pending;
    OpTag& t = *static_cast<OpTag*>(tag);
    Stream& s = *t.stream;
    switch (t.op) {
      case kStart:
        if (!ok) {
          ++pending;
          s.call->Finish(&s.status, &s.tags[kFinish]);
          break;
        }
        s.started = true;
        ++pending;
        s.call->Read(&s.ack, &s.tags[kRead]);
        try_write(s);
        break;
      case kWrite:
        s.writing = false;
        if (ok) try_write(s);
        break;
      case kRead:
        if (!ok) {
          ++pending;
          s.call->Finish(&s.status, &s.tags[kFinish]);
          break;
        }
        {
          const auto arrived = Clock::now();
          analytics::PublishAck ack;
          if (grpc::SerializationTraits<analytics::PublishAck>::Deserialize(&s.ack, &ack).ok()) {
            ++out.acks;
            out.accepted += ack.accepted();
            out.not_accepted += ack.rejected() + ack.duplicates();
            out.duplicate_batches += ack.duplicate_batch() ? 1 : 0;
            if (!s.unacked.empty()) {
              out.latencies_ms.push_back(
                  std::chrono::duration<double, std::milli>(arrived - s.unacked.front()).count());
              s.unacked.pop_front();
            }
          }
        }
        ++pending;
        s.call->Read(&s.ack, &s.tags[kRead]);
        try_write(s);
        break;
      case kFinish:
        s.finished = true;
        ++finished;
        if (!s.status.ok() && out.errors.size() < 10) {
          out.errors.push_back(s.status.error_message());
        }
        break;
    }
  }
  out.elapsed = Seconds(Clock::now() - start);
  std::sort(out.latencies_ms.begin(), out.latencies_ms.end());
  return out;
}

// A temporary data directory on the same file system as /tmp, removed on destruction.
class TempDir {
 public:
  TempDir() {
    char path[] = "/tmp/rta_bench_data_XXXXXX";
    if (mkdtemp(path) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = path;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  uint64_t Bytes() const {
    uint64_t total = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path_)) {
      if (entry.is_regular_file()) total += entry.file_size();
    }
    return total;
  }

 private:
  std::string path_;
};

// "memory-only" -> --data-dir ''; always / interval / never -> a fresh data dir and --fsync.
std::string DurabilityFlags(const std::string& mode, const TempDir& dir) {
  if (mode == "memory-only") return "--data-dir ''";
  return "--data-dir " + dir.path() + "/data --fsync " + mode;
}

json LatencyJson(std::vector<double>& sorted) {
  return {{"batches", sorted.size()},
          {"p50_ms", Percentile(sorted, 0.50)},
          {"p99_ms", Percentile(sorted, 0.99)},
          {"p999_ms", Percentile(sorted, 0.999)},
          {"max_ms", sorted.empty() ? 0.0 : sorted.back()}};
}

void CheckOutcome(const PublishOutcome& o, const std::string& what) {
  if (!o.errors.empty() || o.accepted == 0 || o.accepted != o.events_sent) {
    std::string message = what + ": sent " + std::to_string(o.events_sent) + " events, " +
                          std::to_string(o.accepted) + " accepted";
    for (const auto& e : o.errors) message += "; " + e;
    throw std::runtime_error(message);
  }
}

// GET `path` from 127.0.0.1:port (plain HTTP/1.0, bounded by a 5 s socket timeout): the whole
// response, headers included.
std::string Scrape(int port, const std::string& path = "/metrics") {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[65536];
      for (int i = 0; i < 10000; ++i) {
        const ssize_t got = read(fd, buffer, sizeof buffer);
        if (got <= 0) break;
        body.append(buffer, static_cast<size_t>(got));
      }
    }
  }
  close(fd);
  return body;
}

// A histogram's count, sum and the smallest bucket bound that holds every sample.
json Histogram(const std::string& text, const std::string& name) {
  json h = {{"count", 0.0}, {"sum", 0.0}, {"max_bucket_le", nullptr}};
  std::istringstream lines(text);
  std::string line;
  double count = -1;
  std::vector<std::pair<std::string, double>> buckets;
  while (std::getline(lines, line)) {
    if (line.rfind(name + "_count", 0) == 0) count = std::stod(line.substr(line.rfind(' ') + 1));
    if (line.rfind(name + "_sum", 0) == 0) h["sum"] = std::stod(line.substr(line.rfind(' ') + 1));
    if (line.rfind(name + "_bucket{", 0) == 0) {
      const size_t le = line.find("le=\"");
      if (le == std::string::npos) continue;
      const size_t end = line.find('"', le + 4);
      buckets.emplace_back(line.substr(le + 4, end - le - 4),
                           std::stod(line.substr(line.rfind(' ') + 1)));
    }
  }
  h["count"] = std::max(0.0, count);
  for (const auto& [le, cumulative] : buckets) {
    if (count > 0 && cumulative >= count) {
      h["max_bucket_le"] = le;
      break;
    }
  }
  if (count > 0) h["mean"] = h["sum"].get<double>() / count;
  return h;
}

double Gauge(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + " ", 0) == 0 || line.rfind(name + "{", 0) == 0) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

// DrivePublish with what it cost over the run: CPU seconds and bytes written to storage
// (/proc/<pid>/stat and io) of the servers (summed over `servers`: cluster-ingest's analytics
// nodes), of `others` summed (cluster-ingest's nats-servers) and of this client. The load goes
// to `targets`, stream by stream.
struct PublishCost {
  PublishOutcome outcome;
  double server_cpu_seconds = 0;
  uint64_t server_written = 0;
  uint64_t server_rss_bytes = 0;  // at the end
  double others_cpu_seconds = 0;
  uint64_t others_written = 0;
  double client_cpu_seconds = 0;
};
PublishCost MeasurePublish(const std::vector<pid_t>& servers,
                           const std::vector<std::string>& targets, const PublishParams& params,
                           const std::vector<pid_t>& others = {}) {
  // CPU seconds, bytes written and RSS of `pids`, summed.
  const auto sample = [](const std::vector<pid_t>& pids, double* cpu_seconds, uint64_t* written,
                         uint64_t* rss_bytes) {
    for (pid_t pid : pids) {
      const ProcessSample process = SampleProcess(pid);
      *cpu_seconds += process.cpu_seconds;
      *written += WriteBytes(pid);
      *rss_bytes += process.rss_bytes;
    }
  };
  PublishCost cost;
  double others_cpu_before = 0, server_cpu_before = 0;
  uint64_t others_written_before = 0, server_written_before = 0, rss = 0;
  sample(others, &others_cpu_before, &others_written_before, &rss);
  sample(servers, &server_cpu_before, &server_written_before, &rss);
  const double client_before = ClientCpuSeconds();
  cost.outcome = DrivePublish(targets, params);
  sample(servers, &cost.server_cpu_seconds, &cost.server_written, &cost.server_rss_bytes);
  cost.client_cpu_seconds = ClientCpuSeconds() - client_before;
  sample(others, &cost.others_cpu_seconds, &cost.others_written, &rss);
  cost.server_cpu_seconds -= server_cpu_before;
  cost.server_written -= server_written_before;
  cost.others_cpu_seconds -= others_cpu_before;
  cost.others_written -= others_written_before;
  return cost;
}

// publish: closed loop (streams x window batches of `batch` events unacknowledged) or, with
// params.rate, open loop (publish-latency). Server CPU per event and disk bytes written per
// protobuf byte sent come from /proc/<pid>/stat and /proc/<pid>/io over the run.
// Dashboards watching live segments (subscriptions with filters) for as long as it lives: the
// ten a marketing team might keep open on PublishTemplate's traffic (DE and US are half of it
// each, mobile a third, google a third and session-scoped, clicks a tenth, two product pages
// 2% each, DE on mobile a sixth; a campaign none of it names, which still costs each event a
// lookup of its session). Each reads its stream until cancelled.
class SegmentWatchers {
 public:
  SegmentWatchers(const std::string& address, int count) {
    static const std::vector<std::vector<std::pair<const char*, const char*>>> kWatched = {
        {{"country", "DE"}},
        {{"country", "US"}},
        {{"device", "mobile"}},
        {{"referrer", "google.com"}},
        {{"event_type", "click"}},
        {{"page", "/products/7"}},
        {{"page", "/products/21"}},
        {{"utm_campaign", "spring"}},
        {{"country", "DE"}, {"device", "mobile"}},
        {{"device", "desktop"}}};
    auto stub = analytics::AnalyticsService::NewStub(NewChannel(address, 2000));
    for (int i = 0; i < count; ++i) {
      analytics::SubscriptionRequest request;
      request.add_metric_types("events_total");
      request.add_metric_types("conversions");
      request.add_metric_types("unique_visitors");
      for (const auto& [dimension, value] : kWatched[static_cast<size_t>(i) % kWatched.size()]) {
        analytics::DimensionFilter* filter = request.add_filters();
        filter->set_dimension(dimension);
        filter->set_value(value);
      }
      contexts_.push_back(std::make_unique<grpc::ClientContext>());
      auto reader = stub->SubscribeMetricBatches(contexts_.back().get(), request);
      analytics::MetricUpdateBatch batch;
      if (!reader->Read(&batch)) throw std::runtime_error("a live segment was refused");
      threads_.emplace_back([reader = std::move(reader)]() mutable {
        analytics::MetricUpdateBatch next;
        while (reader->Read(&next)) {
        }
        (void)reader->Finish();
      });
    }
    stub_ = std::move(stub);
  }
  ~SegmentWatchers() {
    for (auto& context : contexts_) context->TryCancel();
    for (auto& thread : threads_) thread.join();
  }

 private:
  std::unique_ptr<analytics::AnalyticsService::Stub> stub_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  std::vector<std::thread> threads_;
};

Result RunPublish(const Options& options, const std::string& mode, PublishParams params,
                  const std::string& extra_flags = "", bool scrape = false, int live_segments = 0) {
  TempDir dir;
  ServerProcess server(options.server_binary, 1000,
                       DurabilityFlags(mode, dir) + " " + extra_flags + " " + options.server_flags);
  if (!server.ok()) throw std::runtime_error("server did not start: " + server.LogText());
  std::unique_ptr<SegmentWatchers> watchers;
  if (live_segments > 0) {
    watchers = std::make_unique<SegmentWatchers>(server.address(), live_segments);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the segments open at a tick
  }
  PublishCost cost = MeasurePublish({server.pid()}, {server.address()}, params);
  PublishOutcome& o = cost.outcome;
  CheckOutcome(o, "publish " + mode);
  Result r;
  r.scenario = params.rate > 0 ? "publish-latency" : "publish";
  r.variant = mode + ", " + std::to_string(params.batch) + " per batch, " +
              std::to_string(params.streams) + " streams";
  r.variant += params.rate > 0 ? Tagged(", open loop ", static_cast<uint64_t>(params.rate)) + "/s"
                               : ", window " + std::to_string(params.window);
  if (live_segments > 0) r.variant += Tagged(", ", live_segments) + " live segments";
  r.unit = "events/s";
  r.rate = o.accepted / o.elapsed;
  r.server_cpu_us =
      cost.server_cpu_seconds * 1e6 / static_cast<double>(std::max<uint64_t>(1, o.accepted));
  r.client_cpu_us =
      cost.client_cpu_seconds * 1e6 / static_cast<double>(std::max<uint64_t>(1, o.accepted));
  r.extra = LatencyJson(o.latencies_ms);
  r.extra["accepted"] = o.accepted;
  r.extra["seconds"] = o.elapsed;
  r.extra["protobuf_bytes_sent"] = o.bytes_sent;
  r.extra["server_write_bytes"] = cost.server_written;
  r.extra["write_bytes_per_protobuf_byte"] =
      static_cast<double>(cost.server_written) /
      static_cast<double>(std::max<uint64_t>(1, o.bytes_sent));
  r.extra["server_rss_mib"] = static_cast<double>(cost.server_rss_bytes) / (1024.0 * 1024.0);
  if (scrape) {
    const std::string text = Scrape(server.metrics_port());
    r.extra["checkpoint_ingest_stall_seconds"] =
        Histogram(text, "analytics_checkpoint_ingest_stall_seconds");
    r.extra["tick_duration_seconds"] =
        Histogram(text, "analytics_aggregator_tick_duration_seconds");
    r.extra["checkpoint_bytes"] = Gauge(text, "analytics_checkpoint_bytes");
    std::string lines;  // every checkpoint_ metric, for the record
    std::istringstream all(text);
    std::string line;
    while (std::getline(all, line)) {
      if (line.rfind("analytics_checkpoint", 0) == 0 && line.find("_bucket") == std::string::npos)
        lines += line + "\n";
    }
    r.extra["checkpoint_metrics"] = lines;
  }
  return r;
}

// Reads key=value from the last log line with `event=<event>`.
std::string LogField(const std::string& log, const std::string& event, const std::string& key) {
  const size_t line_start = log.rfind("event=" + event + " ");
  if (line_start == std::string::npos) return "";
  const size_t line_end = log.find('\n', line_start);
  const std::string line = log.substr(line_start, line_end - line_start);
  const size_t at = line.find(" " + key + "=");
  if (at == std::string::npos) return "";
  const size_t value = at + key.size() + 2;
  return line.substr(value, line.find(' ', value) - value);
}

// events_total over WINDOW_TOTAL through GetMetrics, polled (a tick publishes it) until it
// equals `expected` or `wait_seconds` pass.
double EventsTotal(const std::string& address, double expected, double wait_seconds = 5) {
  auto stub = analytics::AnalyticsService::NewStub(NewChannel(address, 0));
  double value = -1;
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(wait_seconds));
  do {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    analytics::MetricsQuery query;
    query.add_metric_types("events_total");
    query.add_windows(analytics::WINDOW_TOTAL);
    analytics::MetricsSnapshot snapshot;
    if (stub->GetMetrics(&context, query, &snapshot).ok()) {
      for (const auto& m : snapshot.metrics()) {
        if (m.metric_type() == "events_total" && m.labels().empty()) value = m.value();
      }
    }
    if (value == expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (Clock::now() < until);
  return value;
}

// recovery: N events published (fsync always) into a server that never checkpoints, SIGKILL,
// restart on the same data dir (replays all N from the log); then SIGTERM (a shutdown
// checkpoint) and restart again (the checkpoint, no log tail). Throws if a count is wrong.
Result RunRecovery(const Options& options) {
  TempDir dir;
  const std::string flags =
      "--data-dir " + dir.path() + "/data --checkpoint-interval-s 86400 " + options.server_flags;
  PublishParams params;
  params.batch = static_cast<int>(std::min<uint64_t>(1000, options.recovery_events));
  params.max_events = options.recovery_events / params.batch * params.batch;
  params.seconds = 600;
  const uint64_t n = params.max_events;
  PublishOutcome o;
  {
    ServerProcess first(options.server_binary, 1000, flags);
    if (!first.ok()) throw std::runtime_error("server did not start: " + first.LogText());
    o = DrivePublish({first.address()}, params);
    CheckOutcome(o, "recovery ingest");
    first.Stop(SIGKILL);
  }
  const uint64_t log_bytes = dir.Bytes();
  json extra = {{"events", n},
                {"ingest_events_per_s", o.accepted / o.elapsed},
                {"data_dir_bytes_after_kill", log_bytes}};
  double kill_restart_s = 0;
  {
    ServerProcess second(options.server_binary, 1000, flags);
    if (!second.ok()) throw std::runtime_error("restart failed: " + second.LogText());
    kill_restart_s = second.startup_seconds();
    const std::string log = second.LogText();
    const std::string replayed = LogField(log, "recovered", "replayed_events");
    const double total = EventsTotal(second.address(), static_cast<double>(n));
    extra["after_kill"] = {{"start_to_listening_s", kill_restart_s},
                           {"replayed_events", replayed},
                           {"replay_ms", LogField(log, "recovered", "replay_ms")},
                           {"checkpoint", LogField(log, "recovered", "checkpoint")},
                           {"events_total", total}};
    if (replayed != std::to_string(n) || total != static_cast<double>(n)) {
      throw std::runtime_error("recovery after SIGKILL: " + extra["after_kill"].dump());
    }
    const int status = second.Stop(SIGTERM);
    extra["after_kill"]["sigterm_exit_status"] = status;
    extra["shutdown_log"] = LogField(second.LogText(), "checkpoint_at_shutdown", "ms");
  }
  extra["data_dir_bytes_after_sigterm"] = dir.Bytes();
  {
    ServerProcess third(options.server_binary, 1000, flags);
    if (!third.ok()) throw std::runtime_error("restart failed: " + third.LogText());
    const std::string log = third.LogText();
    const double total = EventsTotal(third.address(), static_cast<double>(n));
    extra["after_sigterm"] = {
        {"start_to_listening_s", third.startup_seconds()},
        {"replayed_events", LogField(log, "recovered", "replayed_events")},
        {"checkpoint", LogField(log, "recovered", "checkpoint")},
        {"checkpoint_load_ms", LogField(log, "recovered", "checkpoint_load_ms")},
        {"replay_ms", LogField(log, "recovered", "replay_ms")},
        {"events_total", total}};
    if (total != static_cast<double>(n)) {
      throw std::runtime_error("recovery after SIGTERM: " + extra["after_sigterm"].dump());
    }
  }
  Result r;
  r.scenario = "recovery";
  r.variant = std::to_string(n) + " events in the log, no checkpoint";
  r.unit = "events/s replayed";
  r.rate = n / kill_restart_s;
  r.extra = extra;
  return r;
}

// checkpoint-stall: closed-loop publish (fsync always) with a checkpoint every second; the
// stall and tick histograms scraped from /metrics at the end.
Result RunCheckpointStall(const Options& options, const PublishParams& params) {
  Result r = RunPublish(options, "always", params,
                        "--checkpoint-interval-s 1 --metrics-listen 127.0.0.1:0", true);
  r.scenario = "checkpoint-stall";
  r.variant += ", checkpoint every 1 s";
  return r;
}

// A stream's state as the nats-servers' monitoring endpoints report it (/jsz with stream
// details). Each server that holds a replica reports its own copy; they agree once every
// follower has applied what the leader's quorum acknowledged.
struct StreamState {
  uint64_t messages = 0;            // the largest count a replica reports
  uint64_t fewest_messages = 0;     // the smallest (equal to messages once replicated)
  uint64_t bytes = 0;               // one replica's (the largest)
  uint64_t all_replicas_bytes = 0;  // summed over the servers that hold one
  int replicas = 0;                 // servers that reported the stream
};
StreamState ReadStream(const testing::NatsCluster& nats, int servers, const std::string& name) {
  StreamState state;
  for (int i = 0; i < servers; ++i) {
    const std::string response = Scrape(nats.monitor_port(i), "/jsz?accounts=true&streams=true");
    const size_t body = response.find("\r\n\r\n");
    const json jsz =
        json::parse(body == std::string::npos ? "" : response.substr(body + 4), nullptr, false);
    if (!jsz.is_object() || !jsz.contains("account_details")) continue;
    for (const json& account : jsz["account_details"]) {
      if (!account.is_object() || !account.contains("stream_detail")) continue;
      for (const json& stream : account["stream_detail"]) {
        if (!stream.is_object() || stream.value("name", "") != name) continue;
        const json st = stream.value("state", json::object());
        const uint64_t messages = st.value("messages", uint64_t{0});
        const uint64_t bytes = st.value("bytes", uint64_t{0});
        state.fewest_messages =
            state.replicas == 0 ? messages : std::min(state.fewest_messages, messages);
        state.messages = std::max(state.messages, messages);
        state.bytes = std::max(state.bytes, bytes);
        state.all_replicas_bytes += bytes;
        ++state.replicas;
      }
    }
  }
  return state;
}

double CpuSeconds(const std::vector<pid_t>& pids) {
  double seconds = 0;
  for (pid_t pid : pids) seconds += SampleProcess(pid).cpu_seconds;
  return seconds;
}

// The processes of one cluster-ingest measurement in a temporary directory: `nats_servers`
// nats-servers on loopback (0: none, one node with its local log, fsync always) and `nodes`
// analytics nodes in cluster mode over them (--cluster-partitions 16, every stream with one
// replica per nats-server, --metrics-listen for the cluster gauges). The constructor returns
// once the nodes own every partition between them, each owns some, the ownership has not changed
// for 1.5 s and every view has caught up (60 s at most), and throws otherwise. The destructor
// stops the nodes (SIGTERM), then the nats-servers, then removes the directory. Not
// thread-safe.
class ClusterRig {
 public:
  static constexpr int kPartitions = 16;

  ClusterRig(const Options& options, int nats_servers, int nodes, int exchange_ms, int tick_ms)
      : nats_servers_(nats_servers) {
    if (nats_servers == 0) {
      Start(options, tick_ms, "--data-dir " + dir_.path() + "/data");
      return;
    }
    nats_ = std::make_unique<testing::NatsCluster>(nats_servers);
    if (!nats_->ok()) throw std::runtime_error("nats-server did not start: " + nats_->Log(0));
    std::string urls;
    for (const std::string& url : nats_->urls()) urls += (urls.empty() ? "" : ",") + url;
    for (int i = 0; i < nodes; ++i) {
      const std::string name = Tagged("node-", static_cast<uint64_t>(i));
      Start(options, tick_ms,
            "--data-dir " + dir_.path() + "/" + name + " --metrics-listen 127.0.0.1:0" +
                " --cluster " + urls + " --cluster-node " + name +
                Tagged(" --cluster-replicas ", static_cast<uint64_t>(nats_servers)) +
                Tagged(" --cluster-partitions ", kPartitions) +
                Tagged(" --cluster-exchange-ms ", static_cast<uint64_t>(exchange_ms)));
    }
    WaitSettled();
  }

  std::vector<pid_t> node_pids() const {
    std::vector<pid_t> pids;
    for (const auto& node : nodes_) pids.push_back(node->pid());
    return pids;
  }
  std::vector<pid_t> nats_pids() const {
    std::vector<pid_t> pids;
    for (int i = 0; i < nats_servers_; ++i) pids.push_back(nats_->pid(i));
    return pids;
  }
  std::vector<std::string> addresses() const {
    std::vector<std::string> out;
    for (const auto& node : nodes_) out.push_back(node->address());
    return out;
  }
  const ServerProcess& node(size_t i) const { return *nodes_[i]; }

  // The stream once every replica holds as many messages as the fullest (5 s at most).
  StreamState Stream(const std::string& name) const {
    StreamState state;
    for (int attempt = 0; attempt < 50; ++attempt) {
      state = ReadStream(*nats_, nats_servers_, name);
      if (state.replicas == nats_servers_ && state.fewest_messages == state.messages) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return state;
  }

  // A counter or gauge summed over the nodes' /metrics.
  double MetricSum(const std::string& name) const {
    double sum = 0;
    for (const auto& node : nodes_) sum += std::max(0.0, Gauge(Scrape(node->metrics_port()), name));
    return sum;
  }

  // Every node's events_total, each polled until it is `expected` (`wait_seconds` in all).
  std::vector<double> Totals(double expected, double wait_seconds) const {
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(wait_seconds));
    std::vector<double> totals;
    for (const auto& node : nodes_) {
      totals.push_back(
          EventsTotal(node->address(), expected, std::max(0.1, Seconds(until - Clock::now()))));
    }
    return totals;
  }

 private:
  void Start(const Options& options, int tick_ms, const std::string& flags) {
    nodes_.push_back(std::make_unique<ServerProcess>(options.server_binary, tick_ms,
                                                     flags + " " + options.server_flags));
    if (!nodes_.back()->ok()) {
      throw std::runtime_error("node did not start: " + nodes_.back()->LogText());
    }
  }

  void WaitSettled() {
    std::vector<double> last;
    auto stable_since = Clock::now();
    const auto until = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < until) {
      std::vector<double> owned;
      bool caught_up = true, each_owns = true;
      double sum = 0;
      for (const auto& node : nodes_) {
        const std::string text = Scrape(node->metrics_port());
        owned.push_back(Gauge(text, "analytics_cluster_partitions_owned"));
        caught_up = caught_up && Gauge(text, "analytics_cluster_view_caught_up") == 1;
        each_owns = each_owns && owned.back() > 0;
        sum += std::max(0.0, owned.back());
      }
      if (owned != last) stable_since = Clock::now();
      last = owned;
      if (sum == kPartitions && each_owns && caught_up &&
          Clock::now() - stable_since >= std::chrono::milliseconds(1500)) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::string owned;
    for (double o : last) {
      owned += ' ';  // not `" " + std::to_string()`: GCC 12 warns falsely (-Wrestrict)
      owned += std::to_string(o);
    }
    throw std::runtime_error("cluster did not settle in 60 s (partitions owned:" + owned +
                             "): " + nodes_.front()->LogText());
  }

  TempDir dir_;  // first: removed after the processes stopped
  int nats_servers_ = 0;
  std::unique_ptr<testing::NatsCluster> nats_;
  std::vector<std::unique_ptr<ServerProcess>> nodes_;  // stopped before the nats-servers
};

constexpr int kDefaultExchangeMs = 1000;  // --cluster-exchange-ms's default

// cluster-ingest (issue 16): the closed-loop publish into a node whose event log is local
// (nats_servers 0: --data-dir, fsync always, the single-node default), or into `nodes` nodes in
// cluster mode over `nats_servers` nats-servers on loopback, one replica on each (--cluster);
// with several nodes the streams go all to the first one or, `spread`, round-robin over all.
// Beside the nodes' CPU per event (summed over the node processes): the nats-servers' (summed
// over their /proc stat), the bytes RTA_EVENTS holds per event (every replica's copy, from
// /jsz), the bytes nodes and nats-servers wrote to disk, and what the owners exchanged through
// RTA_PARTIALS per exchange interval. Throws unless every event sent was acknowledged and every
// node's events_total says so too (waited for up to 60 s: the view follows the exchange).
Result RunClusterIngest(const Options& options, int nats_servers, int nodes, bool spread,
                        const PublishParams& params) {
  ClusterRig rig(options, nats_servers, nodes, kDefaultExchangeMs, 1000);
  std::string variant = "local log, fsync always";
  if (nats_servers > 0) {
    variant = Tagged("JetStream R", nats_servers) + Tagged(" on ", nats_servers) +
              (nats_servers == 1 ? " nats-server" : " nats-servers");
  }
  if (nodes > 1) {
    variant = Tagged("", nodes) + " nodes, " + variant +
              (spread ? Tagged(", spread over ", nodes) : ", all via one node");
  }
  const std::vector<pid_t> node_pids = rig.node_pids();
  const std::vector<pid_t> nats_pids = rig.nats_pids();
  std::vector<std::string> targets = rig.addresses();
  if (!spread) targets.resize(1);
  const StreamState partials_before = nats_servers > 0 ? rig.Stream("RTA_PARTIALS") : StreamState{};
  const double published_before =
      nats_servers > 0 ? rig.MetricSum("analytics_cluster_partials_published_total") : 0;
  const double nodes_cpu_before = CpuSeconds(node_pids);
  const double nats_cpu_before = CpuSeconds(nats_pids);
  const auto start = Clock::now();
  PublishCost cost = MeasurePublish(node_pids, targets, params, nats_pids);
  PublishOutcome& o = cost.outcome;
  CheckOutcome(o, "cluster-ingest " + variant);
  const double accepted = static_cast<double>(o.accepted);
  const std::vector<double> totals = rig.Totals(accepted, nats_servers > 0 ? 60 : 5);
  const double exact_after = Seconds(Clock::now() - start);
  const double nodes_cpu_to_exact = CpuSeconds(node_pids) - nodes_cpu_before;
  const double nats_cpu_to_exact = CpuSeconds(nats_pids) - nats_cpu_before;
  for (double total : totals) {
    if (total != accepted) {
      throw std::runtime_error("cluster-ingest " + variant + ": " + std::to_string(o.accepted) +
                               " accepted, events_total " + json(totals).dump() +
                               " on the nodes after 60 s");
    }
  }
  Result r;
  r.scenario = "cluster-ingest";
  r.variant = variant + Tagged(", ", static_cast<uint64_t>(params.batch)) + " per batch";
  r.unit = "events/s";
  r.rate = accepted / o.elapsed;
  r.server_cpu_us = cost.server_cpu_seconds * 1e6 / accepted;
  r.client_cpu_us = cost.client_cpu_seconds * 1e6 / accepted;
  r.extra = LatencyJson(o.latencies_ms);
  r.extra["accepted"] = o.accepted;
  r.extra["events_total"] = totals;  // per node
  r.extra["seconds"] = o.elapsed;
  r.extra["nodes"] = nodes;
  r.extra["nats_servers"] = nats_servers;
  r.extra["nats_cpu_us_per_event"] = cost.others_cpu_seconds * 1e6 / accepted;
  r.extra["disk_write_bytes_per_event"] =
      static_cast<double>(cost.server_written + cost.others_written) / accepted;
  r.extra["protobuf_bytes_per_event"] = static_cast<double>(o.bytes_sent) / accepted;
  // From the first send until every node showed the exact total (polled every 100 ms): the
  // owners' counting and the merges that trail the acknowledgements are in it.
  r.extra["exact_after_s"] = exact_after;
  r.extra["node_cpu_us_per_event_to_exact"] = nodes_cpu_to_exact * 1e6 / accepted;
  r.extra["nats_cpu_us_per_event_to_exact"] = nats_cpu_to_exact * 1e6 / accepted;
  if (nats_servers > 0) {
    const StreamState events = rig.Stream("RTA_EVENTS");
    r.extra["jetstream_messages"] = events.messages;
    r.extra["events_per_jetstream_message"] =
        accepted / static_cast<double>(std::max<uint64_t>(1, events.messages));
    r.extra["jetstream_bytes_per_event"] =
        static_cast<double>(events.all_replicas_bytes) / accepted;
    // What the owners exchanged: RTA_PARTIALS' growth over the run (one replica's bytes, as
    // JetStream stores them: record, subject and headers), per --cluster-exchange-ms interval
    // from the first send to the exact totals. Every node reads all of it.
    const StreamState partials = rig.Stream("RTA_PARTIALS");
    const double records = static_cast<double>(partials.messages - partials_before.messages);
    const double bytes = static_cast<double>(partials.bytes - partials_before.bytes);
    const double intervals = exact_after * 1000.0 / kDefaultExchangeMs;
    r.extra["partials"] = {
        {"records", records},
        {"bytes", bytes},
        {"published_by_nodes",
         rig.MetricSum("analytics_cluster_partials_published_total") - published_before},
        {"exchange_ms", kDefaultExchangeMs},
        {"intervals", intervals},
        {"records_per_interval", records / intervals},
        {"bytes_per_interval", bytes / intervals},
        {"bytes_per_record", records > 0 ? bytes / records : 0.0}};
  }
  return r;
}

// Merge delay (issue 16: from an event acknowledged on node A to its effect in an update on
// node B): 3 nats-servers (R3) and 3 nodes with --cluster-exchange-ms `exchange_ms` and the
// shortest tick (50 ms). A SubscribeMetrics stream on node B (events_total over WINDOW_TOTAL,
// interval 0: every tick) records when each update arrives and the total it shows; node A gets
// `rate` PublishEvents batches of `events` events a second for `seconds` on one stream, each
// acknowledged before the next. A batch's delay runs from its acknowledgement to the first update
// on B whose total covers every event acknowledged through it; `delays_ms` gets them all. Throws
// unless every batch was acknowledged whole and every node ends with the exact total.
Result RunMergeDelay(const Options& options, int exchange_ms, double seconds, double rate,
                     int events, std::vector<double>* delays_ms) {
  ClusterRig rig(options, 3, 3, exchange_ms, 50);
  const std::vector<std::string> addresses = rig.addresses();
  struct Seen {
    Clock::time_point at;
    double total;
  };
  std::mutex mutex;
  std::vector<Seen> seen;  // GUARDED_BY(mutex)
  std::atomic<bool> snapshot_ended{false};
  const auto deadline_after = [](double s) {
    return std::chrono::system_clock::now() +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(
               std::chrono::duration<double>(s));
  };
  auto b_stub = analytics::AnalyticsService::NewStub(NewChannel(addresses[1], 3000));
  grpc::ClientContext subscription;
  subscription.set_deadline(deadline_after(seconds + 120));
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  request.set_interval_ms(0);
  request.set_dashboard_id("load_driver merge delay");
  auto reader = b_stub->SubscribeMetrics(&subscription, request);
  std::thread watcher([&] {
    analytics::MetricUpdate update;
    while (reader->Read(&update)) {
      const auto at = Clock::now();
      if (update.kind() == analytics::UPDATE_KIND_SNAPSHOT_END) snapshot_ended = true;
      if (update.metric_type() != "events_total" || update.window() != analytics::WINDOW_TOTAL ||
          !update.labels().empty()) {
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex);
      seen.push_back({at, update.value()});
    }
    (void)reader->Finish();
  });
  // Ends the subscription and its thread on every way out.
  struct Stop {
    grpc::ClientContext* context;
    std::thread* thread;
    ~Stop() {
      context->TryCancel();
      thread->join();
    }
  } stop{&subscription, &watcher};
  for (int i = 0; i < 100 && !snapshot_ended; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!snapshot_ended) throw std::runtime_error("merge delay: no snapshot from node B in 10 s");

  auto a_stub = analytics::AnalyticsService::NewStub(NewChannel(addresses[0], 3001));
  grpc::ClientContext publish_context;
  publish_context.set_deadline(deadline_after(seconds + 60));
  auto stream = a_stub->PublishEvents(&publish_context);
  struct Acked {
    Clock::time_point at;
    uint64_t through;  // accepted events through this batch
  };
  std::vector<Acked> acked;
  uint64_t accepted = 0;
  const std::string producer = Tagged("merge-delay-", static_cast<uint64_t>(WallMs()));
  const int batches = std::max(1, static_cast<int>(seconds * rate));
  const auto start = Clock::now();
  for (int b = 0; b < batches; ++b) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(b / rate)));
    analytics::PublishRequest batch;
    batch.set_producer_id(producer);
    batch.set_sequence(static_cast<uint64_t>(b) + 1);
    const int64_t now = WallMs();
    for (int i = 0; i < events; ++i) {
      const uint64_t n = static_cast<uint64_t>(b) * static_cast<uint64_t>(events) + i;
      analytics::EventData& e = *batch.add_events();
      e.set_event_id(producer + Tagged("-", n));
      e.set_event_type(n % 10 == 0 ? "click" : "page_view");
      e.set_timestamp_ms(now);
      e.set_session_id(Tagged("md-s", n));  // spread over the partitions
      e.set_visitor_id(Tagged("md-v", n % 1013));
      e.set_page(Tagged("/products/", n % 50));
      e.set_country(n % 2 == 0 ? "DE" : "US");
      e.set_device(n % 3 == 0 ? "mobile" : "desktop");
    }
    analytics::PublishAck ack;
    if (!stream->Write(batch) || !stream->Read(&ack)) break;
    accepted += ack.accepted();
    acked.push_back({Clock::now(), accepted});
  }
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  const double elapsed = Seconds(Clock::now() - start);
  const uint64_t sent = static_cast<uint64_t>(batches) * static_cast<uint64_t>(events);
  if (!status.ok() || accepted != sent || acked.size() != static_cast<size_t>(batches)) {
    throw std::runtime_error("merge delay: " + std::to_string(acked.size()) + " of " +
                             std::to_string(batches) + " batches acknowledged, " +
                             std::to_string(accepted) + " of " + std::to_string(sent) +
                             " events accepted; " + status.error_message());
  }
  // B's view catches up within a few exchanges; 30 s at most.
  for (int i = 0; i < 300; ++i) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!seen.empty() && seen.back().total >= static_cast<double>(accepted)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::vector<double> totals = rig.Totals(static_cast<double>(accepted), 30);
  for (double total : totals) {
    if (total != static_cast<double>(accepted)) {
      throw std::runtime_error("merge delay: " + std::to_string(accepted) +
                               " accepted, events_total " + json(totals).dump() + " on the nodes");
    }
  }
  std::vector<double> delays;
  size_t updates = 0, negative = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    updates = seen.size();
    size_t next = 0;  // the totals only grow: one pass
    for (const Acked& a : acked) {
      while (next < seen.size() && seen[next].total < static_cast<double>(a.through)) ++next;
      if (next == seen.size()) break;
      delays.push_back(std::chrono::duration<double, std::milli>(seen[next].at - a.at).count());
      negative += delays.back() < 0;
    }
  }
  if (delays.size() != acked.size()) {
    throw std::runtime_error("merge delay: node B never showed " +
                             std::to_string(acked[delays.size()].through) + " events");
  }
  delays_ms->insert(delays_ms->end(), delays.begin(), delays.end());
  std::sort(delays.begin(), delays.end());
  Result r;
  r.scenario = "cluster-merge-delay";
  r.variant = Tagged("3 nodes, R3, exchange ", static_cast<uint64_t>(exchange_ms)) +
              " ms, tick 50 ms, ack on A -> update on B";
  r.unit = "batches/s";
  r.rate = static_cast<double>(acked.size()) / elapsed;
  r.extra = {{"exchange_ms", exchange_ms},
             {"batches", delays.size()},
             {"events_per_batch", events},
             {"p50_ms", Percentile(delays, 0.50)},
             {"p99_ms", Percentile(delays, 0.99)},
             {"min_ms", delays.front()},
             {"max_ms", delays.back()},
             {"negative", negative},
             {"updates_on_b", updates},
             {"events_total", totals},
             // The node's own view of it: from an owner's cut to the merge on B.
             {"b_merge_delay_seconds", Histogram(Scrape(rig.node(1).metrics_port()),
                                                 "analytics_cluster_merge_delay_seconds")}};
  return r;
}

// The cluster-ingest rounds' mean per variant, in the order the variants first appear.
struct ClusterMean {
  std::string variant;
  int rounds = 0;
  double rate = 0, server_us = 0, nats_us = 0, stored = 0, disk = 0, p99_ms = 0;
  double server_us_to_exact = 0, nats_us_to_exact = 0, exact_after_s = 0;
  double records_per_interval = 0, bytes_per_interval = 0, bytes_per_record = 0;
  bool partials = false;
};
std::vector<ClusterMean> ClusterMeans(const std::vector<Result>& results) {
  std::vector<ClusterMean> means;
  for (const Result& r : results) {
    if (r.scenario != "cluster-ingest") continue;
    auto it = std::find_if(means.begin(), means.end(),
                           [&](const ClusterMean& m) { return m.variant == r.variant; });
    if (it == means.end()) it = means.insert(means.end(), ClusterMean{.variant = r.variant});
    ++it->rounds;
    it->rate += r.rate;
    it->server_us += r.server_cpu_us;
    it->nats_us += r.extra["nats_cpu_us_per_event"].get<double>();
    it->stored += r.extra.value("jetstream_bytes_per_event", 0.0);
    it->disk += r.extra["disk_write_bytes_per_event"].get<double>();
    it->p99_ms += r.extra["p99_ms"].get<double>();
    it->server_us_to_exact += r.extra["node_cpu_us_per_event_to_exact"].get<double>();
    it->nats_us_to_exact += r.extra["nats_cpu_us_per_event_to_exact"].get<double>();
    it->exact_after_s += r.extra["exact_after_s"].get<double>();
    if (r.extra.contains("partials")) {
      const json& p = r.extra["partials"];
      it->partials = true;
      it->records_per_interval += p["records_per_interval"].get<double>();
      it->bytes_per_interval += p["bytes_per_interval"].get<double>();
      it->bytes_per_record += p["bytes_per_record"].get<double>();
    }
  }
  for (ClusterMean& m : means) {
    for (double* v : {&m.rate, &m.server_us, &m.nats_us, &m.stored, &m.disk, &m.p99_ms,
                      &m.server_us_to_exact, &m.nats_us_to_exact, &m.exact_after_s,
                      &m.records_per_interval, &m.bytes_per_interval, &m.bytes_per_record}) {
      *v /= m.rounds;
    }
  }
  return means;
}

// The cluster-ingest rounds as one table: per variant the mean of its rounds, and those means
// over the local log's.
std::string ClusterIngestTable(const std::vector<Result>& results) {
  const std::vector<ClusterMean> means = ClusterMeans(results);
  std::string out =
      "| log | events/s | node(s) CPU/event | nats-servers CPU/event | node(s) + NATS CPU/event | "
      "JetStream bytes/event (all replicas) | disk bytes written/event | ack p99 | events/s vs "
      "local | node(s) CPU vs local | node(s) + NATS CPU vs local |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n";
  if (means.empty()) return out;
  const ClusterMean& local = means.front();  // no nats-servers
  char line[1024];
  for (const ClusterMean& m : means) {
    std::snprintf(line, sizeof line,
                  "| %s | %.0f | %.2f us | %.2f us | %.2f us | %.0f | %.0f | %.1f ms | %.2f | "
                  "%.2f | %.2f |\n",
                  m.variant.c_str(), m.rate, m.server_us, m.nats_us, m.server_us + m.nats_us,
                  m.stored, m.disk, m.p99_ms, m.rate / local.rate, m.server_us / local.server_us,
                  (m.server_us + m.nats_us) / local.server_us);
    out += line;
  }
  return out;
}

// The cluster variants' counting and exchange: CPU per event from the first send until every
// node showed the exact total, and RTA_PARTIALS' growth per exchange interval.
std::string ClusterExchangeTable(const std::vector<Result>& results) {
  std::string out =
      "| log | exact on every node after | node(s) CPU/event to exact | nats-servers CPU/event "
      "to exact | node(s) + NATS vs local | partial records/interval | partial bytes/interval "
      "| bytes/partial record |\n"
      "|---|---|---|---|---|---|---|---|\n";
  const std::vector<ClusterMean> means = ClusterMeans(results);
  if (means.empty()) return out;
  const ClusterMean& local = means.front();
  char line[1024];
  for (const ClusterMean& m : means) {
    if (!m.partials) continue;
    std::snprintf(line, sizeof line,
                  "| %s | %.1f s | %.2f us | %.2f us | %.2f | %.1f | %.0f | %.0f |\n",
                  m.variant.c_str(), m.exact_after_s, m.server_us_to_exact, m.nats_us_to_exact,
                  (m.server_us_to_exact + m.nats_us_to_exact) / local.server_us_to_exact,
                  m.records_per_interval, m.bytes_per_interval, m.bytes_per_record);
    out += line;
  }
  return out;
}

// Merge delay per exchange interval, every round's batches pooled.
std::string MergeDelayTable(const std::vector<std::pair<int, std::vector<double>>>& pooled) {
  std::string out =
      "| --cluster-exchange-ms | batches | p50 | p99 | max |\n"
      "|---|---|---|---|---|\n";
  char line[256];
  for (auto [exchange_ms, delays] : pooled) {
    std::sort(delays.begin(), delays.end());
    std::snprintf(line, sizeof line, "| %d | %zu | %.0f ms | %.0f ms | %.0f ms |\n", exchange_ms,
                  delays.size(), Percentile(delays, 0.50), Percentile(delays, 0.99),
                  delays.empty() ? 0.0 : delays.back());
    out += line;
  }
  return out;
}

std::string Today() {
  const std::time_t t = std::time(nullptr);
  char buffer[16];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d", std::gmtime(&t));
  return buffer;
}

std::string MarkdownTable(const std::vector<Result>& results) {
  std::string out =
      "| scenario | variant | throughput | server CPU/unit | client CPU/unit | details |\n"
      "|---|---|---|---|---|---|\n";
  char line[1024];
  for (const Result& r : results) {
    std::snprintf(line, sizeof line, "| %s | %s | %.0f %s | %.2f us | %.2f us | %s |\n",
                  r.scenario.c_str(), r.variant.c_str(), r.rate, r.unit.c_str(), r.server_cpu_us,
                  r.client_cpu_us, r.extra.dump().c_str());
    out += line;
  }
  return out;
}

// Writes <dir>/<date>.json and <date>.md: the load results, plus the Google Benchmark
// micro-benchmarks when bench/run.sh left them in <dir>/<date>-micro.json.
void WriteReport(const Options& options, const std::vector<Result>& results) {
  const std::string base = options.output_dir + "/" + Today();
  json doc = {{"date", Today()},
              {"seconds_per_measurement", options.seconds},
              {"cores", std::thread::hardware_concurrency()},
              {"load", json::array()}};
  for (const Result& r : results) {
    doc["load"].push_back({{"scenario", r.scenario},
                           {"variant", r.variant},
                           {"rate", r.rate},
                           {"unit", r.unit},
                           {"server_cpu_us_per_unit", r.server_cpu_us},
                           {"client_cpu_us_per_unit", r.client_cpu_us},
                           {"details", r.extra}});
  }
  // Appended, not `literal + string`: GCC 12 warns falsely (-Wrestrict) on the latter.
  std::string markdown = "## Load (server and load generator on the same 2 cores)\n\n";
  markdown += MarkdownTable(results);
  std::ifstream micro_file(base + "-micro.json");
  if (micro_file) {
    try {
      const json micro = json::parse(micro_file);
      doc["micro"] = micro;
      markdown +=
          "\n## Aggregator micro-benchmarks\n\n| benchmark | time/op | items/s |\n|---|---|---|\n";
      char line[512];
      for (const auto& b : micro.at("benchmarks")) {
        std::snprintf(line, sizeof line, "| %s | %.1f %s | %.3g |\n", b.value("name", "").c_str(),
                      b.value("real_time", 0.0), b.value("time_unit", "").c_str(),
                      b.value("items_per_second", 0.0));
        markdown += line;
      }
    } catch (const json::exception& e) {
      std::fprintf(stderr, "load_driver: ignoring %s-micro.json: %s\n", base.c_str(), e.what());
    }
  }
  std::ofstream(base + ".json") << doc.dump(2) << "\n";
  std::ofstream(base + ".md") << markdown;
  std::printf("wrote %s.json and %s.md\n", base.c_str(), base.c_str());
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + ": missing value");
      return argv[++i];
    };
    if (arg == "--server-binary")
      options.server_binary = value();
    else if (arg == "--scenario")
      options.scenario = value();
    else if (arg == "--seconds")
      options.seconds = std::stod(value());
    else if (arg == "--latency-rate")
      options.latency_rate = std::stod(value());
    else if (arg == "--smoke")
      options.smoke = true;
    else if (arg == "--output-dir")
      options.output_dir = value();
    else if (arg == "--server-flags")
      options.server_flags = value();
    else if (arg == "--history-fill-seconds")
      options.history_fill_seconds = std::stod(value());
    else if (arg == "--return-wait-seconds")
      options.return_wait_seconds = std::stod(value());
    else if (arg == "--publish-streams")
      options.publish_streams = std::stoi(value());
    else if (arg == "--publish-window")
      options.publish_window = std::stoi(value());
    else if (arg == "--publish-batch")
      options.publish_batch = std::stoi(value());
    else if (arg == "--publish-rate")
      options.publish_rate = std::stod(value());
    else if (arg == "--recovery-events")
      options.recovery_events = std::stoull(value());
    else if (arg == "--reference-server")
      options.reference_server = value();
    else if (arg == "--fanout-load")
      options.fanout_load = value();
    else if (arg == "--rounds")
      options.rounds = std::max(1, std::stoi(value()));
    else if (arg == "--help") {
      std::puts(
          "load_driver [--scenario all|ingest-single|ingest-batched|fanout|latency|analyze|\n"
          "                        join-history|churn|durable|publish|publish-latency|\n"
          "                        recovery|checkpoint-stall|access|fanout-go|live-segments|\n"
          "                        fanout-web|http-ingest|cluster-ingest]\n"
          "            (durable: publish to checkpoint-stall; access: ingest and fan-out with\n"
          "             TLS and tokens against plaintext; fanout-go: fan-out against the\n"
          "             grpc-go reference server, round by round; cluster-ingest: publish\n"
          "             into the local log, into one node over JetStream on 1 and 3\n"
          "             nats-servers and into 3 nodes over 3 (all via one node, spread over\n"
          "             the 3), round by round, then the merge delay from node A to node B\n"
          "             at --cluster-exchange-ms 1000 and 250; none of them is part of all)\n"
          "            [--reference-server PATH (fanout-go; default: the one this build made)]\n"
          "            [--rounds N (fanout-go, fanout-web, cluster-ingest: pairs per load,\n"
          "             default 3)]\n"
          "            [--fanout-load cpu|rss|both (fanout-go: 2,000 subscribers at 100 ms,\n"
          "             10,000 at 1 s, or both; default both)]\n"
          "            [--seconds S (per measurement, default 5)] [--smoke]\n"
          "            [--server-binary PATH] [--output-dir DIR (writes <date>.json and .md)]\n"
          "            [--server-flags 'FLAGS' (appended to every server's command line)]\n"
          "            [--history-fill-seconds S (join-history: ingest before the joins, 60)]\n"
          "            [--return-wait-seconds S (join-history, churn: RSS watched, 60)]\n"
          "            [--publish-streams N (16)] [--publish-window W (8 unacked batches)]\n"
          "            [--publish-batch B (events per PublishRequest; default: 100 and 1000)]\n"
          "            [--publish-rate EVENTS_PER_S (publish-latency; default: half of the best\n"
          "             fsync-always rate of publish when that ran first, else 100000)]\n"
          "            [--recovery-events N (recovery: events in the log, default 1000000)]\n"
          "            [--latency-rate EVENTS_PER_S (default: half of ingest-single's capacity\n"
          "             when that ran first, else 1000)]\n"
          "Starts analytics_server processes on 127.0.0.1 and measures them.");
      return 0;
    } else {
      throw std::runtime_error("unknown flag " + arg);
    }
  }
  if (options.smoke) {
    options.seconds = 0.5;
    options.history_fill_seconds = 2;
    options.return_wait_seconds = 2;
    options.recovery_events = 10'000;
    options.publish_streams = std::min(options.publish_streams, 4);
  }
  const bool all = options.scenario == "all";
  std::vector<Result> results;
  auto run = [&](const Result& r) {
    results.push_back(r);
    std::printf("%-15s %-28s %12.0f %-10s server %.2f us/unit  client %.2f us/unit  %s\n",
                r.scenario.c_str(), r.variant.c_str(), r.rate, r.unit.c_str(), r.server_cpu_us,
                r.client_cpu_us, r.extra.dump().c_str());
    std::fflush(stdout);
  };
  double single_capacity = 0;
  if (all || options.scenario == "ingest-single") {
    for (int streams : options.smoke ? std::vector<int>{4} : std::vector<int>{4, 16}) {
      run(RunIngest(options, std::to_string(streams) + " streams", streams, 1, false));
      single_capacity = std::max(single_capacity, results.back().rate);
    }
  }
  if (all || options.scenario == "ingest-batched") {
    // With fewer than 8 streams the server's two queues are not both kept busy.
    for (int per_message : {10, 100}) {
      for (int streams : options.smoke ? std::vector<int>{4} : std::vector<int>{4, 16}) {
        run(RunIngest(
            options,
            std::to_string(per_message) + " per message, " + std::to_string(streams) + " streams",
            streams, per_message, true));
      }
    }
  }
  if (all || options.scenario == "http-ingest") {
    // Side by side with gRPC on the same events per message, in the same run.
    for (int per : {1, 50}) {
      run(RunHttpIngest(options, 4, per, 2));
      run(RunIngest(options, std::to_string(per) + " per message, 4 streams", 4, per, per > 1));
    }
  }
  if (all || options.scenario == "fanout") {
    for (int subscribers : options.smoke ? std::vector<int>{100} : std::vector<int>{1000, 10000}) {
      for (bool batched : {false, true}) {
        run(RunFanout(options, {.subscribers = subscribers, .batched = batched}));
      }
    }
    // What dashboard_client subscribes to: many series change per tick.
    const int dashboards = options.smoke ? 100 : 1000;
    for (bool batched : {false, true}) {
      run(RunFanout(options, {.subscribers = dashboards, .batched = batched, .dashboards = true}));
    }
  }
  if (all || options.scenario == "fanout-web") {
    // Browsers beside gRPC clients, pair by pair on the same load in the same run: the ratio of
    // server CPU per update is the figure (each gRPC-Web stream is its own connection).
    const int rounds = options.smoke ? 1 : options.rounds;
    const std::vector<FanoutLoad> loads =
        options.smoke
            ? std::vector<FanoutLoad>{{.subscribers = 100, .batched = true}}
            : std::vector<FanoutLoad>{{.subscribers = 1000, .batched = true},
                                      {.subscribers = 1000, .batched = true, .dashboards = true}};
    for (const FanoutLoad& load : loads) {
      for (int round = 0; round < rounds; ++round) {
        run(RunFanout(options, load));
        run(RunGrpcWebFanout(options, load));
      }
    }
  }
  if (options.scenario == "fanout-go") {
    // Issue 14's load against a plain grpc-go server (bench/go/refserver: a map of streams
    // under one mutex, stream.Send in a loop each tick) on the same machine in the same run,
    // pair by pair with the order alternating, so the ratio survives the machine's noise:
    // events_total in WINDOW_TOTAL over SubscribeMetrics, 1,000 events/s beside; 2,000
    // subscribers over 20 connections at a 100 ms tick (CPU per update), then 10,000 at a 1 s
    // tick (RSS per subscriber).
    if (options.reference_server.empty() || !std::filesystem::exists(options.reference_server)) {
      throw std::runtime_error(
          "fanout-go needs the reference server: bash bench/go/build.sh PATH, then "
          "--reference-server PATH (got '" +
          options.reference_server + "')");
    }
    if (options.fanout_load != "cpu" && options.fanout_load != "rss" &&
        options.fanout_load != "both") {
      throw std::runtime_error("--fanout-load: expected cpu, rss or both, got '" +
                               options.fanout_load + "'");
    }
    std::vector<FanoutLoad> loads;
    if (options.fanout_load != "rss" || options.smoke) {
      loads.push_back({.subscribers = options.smoke ? 200 : 2000,
                       .connections = options.smoke ? 4 : 20,
                       .metrics = {"events_total"},
                       .tick_ms = 100,
                       .ingest_rate = 1000});
    }
    if (!options.smoke && options.fanout_load != "cpu") {
      loads.push_back({.subscribers = 10000,
                       .connections = 20,
                       .metrics = {"events_total"},
                       .tick_ms = 1000,
                       .ingest_rate = 1000});
    }
    const int rounds = options.smoke ? 1 : options.rounds;
    for (FanoutLoad& load : loads) {
      // Another server in our place (bench/load/callback_refserver): its name in the results.
      if (options.server_binary != RTA_SERVER_BINARY) {
        load.server_label = std::filesystem::path(options.server_binary).filename().string();
      }
      FanoutLoad reference = load;
      reference.server_binary = options.reference_server;
      reference.server_label = "grpc-go reference";
      for (int round = 0; round < rounds; ++round) {
        Result ours, theirs;
        if (round % 2 == 0) {
          ours = RunFanout(options, load);
          theirs = RunFanout(options, reference);
        } else {
          theirs = RunFanout(options, reference);
          ours = RunFanout(options, load);
        }
        const auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
        ours.extra["cpu_per_update_vs_reference"] = ratio(ours.server_cpu_us, theirs.server_cpu_us);
        ours.extra["rss_per_subscriber_vs_reference"] =
            ratio(ours.extra["server_rss_bytes_per_subscriber"].get<double>(),
                  theirs.extra["server_rss_bytes_per_subscriber"].get<double>());
        run(ours);
        run(theirs);
      }
    }
  }
  if (options.scenario == "access") {
    // TLS + tokens against plaintext, each pair back to back on the same machine: a batched
    // ingest and a batched fan-out (server CPU per unit is the figure to compare).
    const SecureAccess secure;
    Options with_access = options;
    with_access.secure = &secure;
    const int streams = options.smoke ? 4 : 16;
    for (const Options* o : {&options, &with_access}) {
      run(RunIngest(*o, "100 per message, " + std::to_string(streams) + " streams", streams, 100,
                    true));
    }
    for (const Options* o : {&options, &with_access}) {
      run(RunFanout(*o, {.subscribers = options.smoke ? 100 : 1000, .batched = true}));
    }
  }
  if (all || options.scenario == "latency") {
    const double rate = options.latency_rate > 0 ? options.latency_rate
                        : options.smoke          ? 1000
                                        : std::clamp(single_capacity * 0.5, 1000.0, 100000.0);
    run(RunLatency(options, rate, /*push_on_change=*/false));
    // Push: every ingest message asks for an early (coalesced) tick, so a lower rate.
    run(RunLatency(options, std::min(rate, 10000.0), /*push_on_change=*/true));
  }
  if (all || options.scenario == "analyze") run(RunAnalyze(options, 64));
  if (all || options.scenario == "join-history") {
    for (bool batched : {false, true}) run(RunJoinHistory(options, batched));
  }
  if (all || options.scenario == "churn") run(RunChurn(options));
  const bool durable = all || options.scenario == "durable";
  const std::vector<int> batches = options.publish_batch > 0
                                       ? std::vector<int>{options.publish_batch}
                                   : options.smoke ? std::vector<int>{100}
                                                   : std::vector<int>{100, 1000};
  PublishParams publish;
  publish.streams = options.publish_streams;
  publish.window = options.publish_window;
  publish.seconds = options.seconds;
  double best_always = 0;
  int best_batch = batches.back();
  if (durable || options.scenario == "publish") {
    for (int batch : batches) {
      publish.batch = batch;
      for (const char* mode : {"memory-only", "always", "interval", "never"}) {
        run(RunPublish(options, mode, publish));
        if (std::string(mode) == "always" && results.back().rate > best_always) {
          best_always = results.back().rate;
          best_batch = batch;
        }
      }
    }
  }
  if (options.scenario == "live-segments") {
    // Issue 13: ingest with 10 live segments open against none, alternating, --rounds times.
    publish.batch = options.publish_batch > 0 ? options.publish_batch : 1000;
    for (int round = 0; round < options.rounds; ++round) {
      for (const char* mode : {"memory-only", "always"}) {
        for (int segments : {0, 10}) run(RunPublish(options, mode, publish, "", false, segments));
      }
    }
  }
  if (durable || options.scenario == "publish-latency") {
    PublishParams open = publish;
    open.batch = best_batch;
    open.streams = std::min(publish.streams, 4);
    open.rate = options.publish_rate > 0 ? options.publish_rate
                : best_always > 0        ? best_always / 2
                : options.smoke          ? 10'000
                                         : 100'000;
    run(RunPublish(options, "always", open));
  }
  if (options.scenario == "cluster-ingest") {
    // Issue 16: the same publish load into the local log, into one node over JetStream on one
    // nats-server and on three (replicas 3), and into three nodes over three nats-servers, all
    // through one node or spread over the three; round by round with the order rotating: the
    // ratios to the same round's local log are the figures. Then, each round, the merge delay
    // at the default exchange interval and at 250 ms.
    PublishParams cluster = publish;
    cluster.batch = options.publish_batch > 0 ? options.publish_batch : 1000;
    // About 800 MB of records: within each nats-server's max_file_store (1 GB, set in
    // tests/support/nats_cluster.cc).
    cluster.max_events = 10'000'000;
    const int rounds = options.smoke ? 1 : options.rounds;
    struct Setup {
      int nats_servers;
      int nodes;
      bool spread;
    };
    // The smoke (under a minute) keeps the local log, R1, one multi-node variant (spread) and
    // one merge delay, briefly.
    std::vector<Setup> setups = {{0, 1, false}, {1, 1, false}, {3, 3, true}};
    if (!options.smoke) setups.insert(setups.begin() + 2, {Setup{3, 1, false}, Setup{3, 3, false}});
    const std::vector<int> exchanges =
        options.smoke ? std::vector<int>{250} : std::vector<int>{kDefaultExchangeMs, 250};
    const double delay_seconds = options.smoke ? 2 : 10;
    std::vector<std::pair<int, std::vector<double>>> delays;
    for (int exchange_ms : exchanges) delays.emplace_back(exchange_ms, std::vector<double>{});
    for (int round = 0; round < rounds; ++round) {
      std::vector<Result> round_results(setups.size());
      for (size_t i = 0; i < setups.size(); ++i) {
        const size_t mode = (i + static_cast<size_t>(round)) % setups.size();
        const Setup& setup = setups[mode];
        round_results[mode] =
            RunClusterIngest(options, setup.nats_servers, setup.nodes, setup.spread, cluster);
      }
      const Result& local = round_results[0];
      const double local_to_exact = local.extra["node_cpu_us_per_event_to_exact"].get<double>();
      for (Result& r : round_results) {
        r.extra["events_per_s_vs_local"] = r.rate / local.rate;
        r.extra["server_cpu_vs_local"] = r.server_cpu_us / local.server_cpu_us;
        r.extra["server_and_nats_cpu_vs_local"] =
            (r.server_cpu_us + r.extra["nats_cpu_us_per_event"].get<double>()) /
            local.server_cpu_us;
        r.extra["to_exact_cpu_vs_local"] =
            (r.extra["node_cpu_us_per_event_to_exact"].get<double>() +
             r.extra["nats_cpu_us_per_event_to_exact"].get<double>()) /
            local_to_exact;
        run(r);
      }
      // 10 batches of 10 events a second on node A, watched on node B.
      for (auto& [exchange_ms, pooled] : delays) {
        run(RunMergeDelay(options, exchange_ms, delay_seconds, 10, 10, &pooled));
      }
    }
    std::printf("\ncluster-ingest, mean of %d round(s) of %g s:\n%s", rounds, options.seconds,
                ClusterIngestTable(results).c_str());
    std::printf("\ncounting and exchange (JetStream variants; an interval is %d ms):\n%s",
                kDefaultExchangeMs, ClusterExchangeTable(results).c_str());
    std::printf(
        "\nmerge delay, %d round(s) of %g s pooled (ack on node A -> first update on "
        "node B showing it):\n%s",
        rounds, delay_seconds, MergeDelayTable(delays).c_str());
  }
  if (durable || options.scenario == "recovery") run(RunRecovery(options));
  if (durable || options.scenario == "checkpoint-stall") {
    PublishParams steady = publish;
    steady.batch = best_batch;
    steady.seconds = options.smoke ? 1.5 : std::max(10.0, options.seconds);
    run(RunCheckpointStall(options, steady));
  }

  if (!options.output_dir.empty()) WriteReport(options, results);
  return 0;
}

}  // namespace
}  // namespace rta::bench

int main(int argc, char** argv) {
  try {
    return rta::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "load_driver: %s\n", e.what());
    return 1;
  }
}
