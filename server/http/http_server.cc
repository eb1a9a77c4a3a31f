#include "server/http/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>

#include "server/get_metrics_call.h"
#include "server/history_query.h"
#include "server/http/embedded_files.h"
#include "server/http/events_endpoint.h"
#include "server/http/grpc_web.h"
#include "server/http/origin_policy.h"
#include "server/ingest_journal.h"
#include "server/live_segments.h"
#include "server/log.h"
#include "server/query_metrics_call.h"
#include "server/subscriber_batch.h"
#include "server/subscription_request.h"

namespace rta::server::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

// Lets the log's writer thread wake a connection without touching the io_context once Stop()
// has closed it (the callback may fire until the log closes, after the HTTP server is gone).
struct DurableGate {
  std::mutex mutex;
  bool open = true;  // guarded by mutex
  net::io_context* io = nullptr;
};

namespace {

constexpr uint32_t kHeaderLimit = 8 * 1024;
// An acknowledgement waits for the log at most this long, and a range query for its answer;
// then 503 or DEADLINE_EXCEEDED (the log or the store is stuck: the client retries; event ids
// make a re-sent event safe).
constexpr auto kWaitLimit = std::chrono::seconds(60);
// A subscription's kernel send buffer. Conflation starts when a write waits; with Linux's
// autotuned buffer (up to tcp_wmem's 4 MB) a slow reader would first be fed megabytes of stale
// deltas, where gRPC's HTTP/2 flow control holds a stream to its window (64 KB to start). A
// fixed buffer of this size (the kernel doubles it) keeps a slow gRPC-Web reader as close to the
// present as a gRPC one.
constexpr int kStreamSendBufferBytes = 64 * 1024;

// Boost 1.74's Beast has its own string_view.
std::string_view View(beast::string_view text) { return {text.data(), text.size()}; }

// "/v1/events?site=abc" -> path "/v1/events", the value of `name` in the query.
std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

std::string_view QueryValue(std::string_view target, std::string_view name) {
  const size_t question = target.find('?');
  if (question == std::string_view::npos) return {};
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t equals = pair.find('=');
    if (pair.substr(0, equals) == name && equals != std::string_view::npos) {
      return pair.substr(equals + 1);
    }
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return {};
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// A page served by this very port (the live view) posts with its own origin.
bool SameOrigin(std::string_view origin, std::string_view host) {
  const size_t scheme = origin.find("://");
  return scheme != std::string_view::npos && !host.empty() &&
         EqualsIgnoringCase(origin.substr(scheme + 3), host);
}

constexpr std::string_view kServicePath = "/analytics.AnalyticsService/";

// Update pacing (interval_ms) is about real elapsed time, as for gRPC subscribers.
int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* RouteLabel(std::string_view path) {
  if (path.substr(0, kServicePath.size()) == kServicePath) return "grpc-web";
  if (path == "/v1/events") return "/v1/events";
  if (path == "/healthz") return "/healthz";
  if (path == "/tracker.js") return "/tracker.js";
  if (path == "/" || path == "/index.html") return "/";
  return "other";
}

}  // namespace

// A gRPC-Web subscription in progress: what the publish notification reaches (on its strand).
class StreamingCall {
 public:
  virtual ~StreamingCall() = default;
  // A snapshot was published (`regular`: a regular tick, not only an early one).
  virtual void NotifyPublished(bool regular) = 0;
  virtual void NotifyShutdown() = 0;
  virtual bool push_on_change() const = 0;
};

struct HttpServer::Shared {
  explicit Shared(ServiceState& state_in) : state(state_in), endpoint(state_in) {
    std::string ignored;
    OriginPolicy::Parse(state.config.http_allowed_origins, &origins, &ignored);
    gate->io = &io;
  }

  std::shared_ptr<net::ssl::context> CurrentTls() {
    std::lock_guard lock(tls_mutex);
    return tls;
  }

  bool OriginAllowed(std::string_view origin, std::string_view host) const {
    return origins.Allows(origin) || SameOrigin(origin, host);
  }

  ServiceState& state;
  EventsEndpoint endpoint;
  OriginPolicy origins;
  std::shared_ptr<DurableGate> gate = std::make_shared<DurableGate>();
  // The TLS context new connections use (null: plain HTTP); replaced on SIGHUP.
  std::mutex tls_mutex;
  std::shared_ptr<net::ssl::context> tls;  // guarded by tls_mutex
  std::atomic<bool> stopping{false};
  std::atomic<int> active_requests{0};  // read whole, not yet answered
  std::atomic<uint32_t> connections{0};
  std::mutex addresses_mutex;
  std::unordered_map<std::string, uint32_t> connections_per_address;  // guarded
  // gRPC-Web subscriptions; expired entries are dropped as the list is walked.
  std::mutex streams_mutex;
  std::vector<std::weak_ptr<StreamingCall>> streams;  // guarded by streams_mutex
  // As Worker::NotifyPublished: one posted notification at a time, the newest snapshot wins.
  std::atomic<bool> publish_pending{false};
  std::atomic<bool> regular_tick_pending{false};

  std::vector<std::shared_ptr<StreamingCall>> LiveStreams() {
    std::lock_guard lock(streams_mutex);
    std::vector<std::shared_ptr<StreamingCall>> live;
    size_t kept = 0;
    for (size_t i = 0; i < streams.size(); ++i) {
      if (auto call = streams[i].lock()) {
        live.push_back(std::move(call));
        // Not onto itself: a self-move empties a weak_ptr in libstdc++.
        if (kept != i) streams[kept] = std::move(streams[i]);
        ++kept;
      }
    }
    streams.resize(kept);
    return live;
  }
  // Last: destroyed first, with the connections its handlers still own (they use the above).
  net::io_context io;
  tcp::acceptor acceptor{net::make_strand(io)};
  net::steady_timer accept_retry{acceptor.get_executor()};
};

namespace {

using Shared = HttpServer::Shared;

// One connection: read a request (bounded in size and time), answer it, read the next.
// Everything runs on the connection's strand. `Stream` is beast::tcp_stream, or an ssl_stream
// over one when the server has TLS (the handshake comes first, within the request timeout).
template <class Stream>
class Session : public StreamingCall, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  // `tls`: the context the stream was made with (kept alive as long as the stream).
  template <class... StreamArgs>
  Session(Shared& shared, std::string address, std::shared_ptr<net::ssl::context> tls,
          StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...),
        tls_(std::move(tls)),
        shared_(shared),
        address_(std::move(address)),
        wait_timer_(stream_.get_executor()) {}

  ~Session() override {
    EndStream();
    {
      std::lock_guard lock(shared_.addresses_mutex);
      auto it = shared_.connections_per_address.find(address_);
      if (it != shared_.connections_per_address.end() && --it->second == 0) {
        shared_.connections_per_address.erase(it);
      }
    }
    shared_.connections.fetch_sub(1, std::memory_order_relaxed);
    shared_.state.metrics.http_connections().Decrement();
  }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->lowest().expires_after(
            std::chrono::milliseconds(self->config().http_request_timeout_ms));
        self->stream_.async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) {  // not TLS, a bad certificate, too slow
            self->Close();
            return;
          }
          self->Read();
        });
      } else {
        self->Read();
      }
    });
  }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  const ServerConfig& config() const { return shared_.state.config; }

  void Read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(config().http_max_body_bytes);
    buffer_.max_size(kHeaderLimit + config().http_max_body_bytes + 4096);
    lowest().expires_after(std::chrono::milliseconds(config().http_request_timeout_ms));
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec) {
      const bool http_error =
          ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
      // The peer went away, the request did not arrive in time, or the server stops: close.
      if (!http_error || ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
        Close();
        return;
      }
      active_ = true;
      shared_.active_requests.fetch_add(1, std::memory_order_relaxed);
      // The request line comes first: a body or headers over the limit still name the route
      // (an empty target, when not even the request line was read, is "other").
      route_ = RouteLabel(PathOf(View(parser_->get().target())));
      origin_.clear();
      close_after_ = true;
      if (ec == bhttp::error::body_limit) {
        SendError(413, "body over " + std::to_string(config().http_max_body_bytes) +
                           " bytes (--http-max-body-bytes)");
      } else if (ec == bhttp::error::header_limit) {
        SendError(431, "headers over " + std::to_string(kHeaderLimit) + " bytes");
      } else {
        SendError(400, "malformed HTTP request: " + ec.message());
      }
      return;
    }
    active_ = true;
    shared_.active_requests.fetch_add(1, std::memory_order_relaxed);
    lowest().expires_never();  // until the answer is written (the log wait has its own limit)
    Route(parser_->get());
  }

  void Route(const bhttp::request<bhttp::string_body>& request) {
    const std::string_view target = View(request.target());
    const std::string_view path = PathOf(target);
    route_ = RouteLabel(path);
    close_after_ = !request.keep_alive() || shared_.stopping.load(std::memory_order_relaxed);
    origin_ = std::string(View(request[bhttp::field::origin]));
    if (!origin_.empty() && !shared_.OriginAllowed(origin_, View(request[bhttp::field::host]))) {
      const std::string origin = origin_.substr(0, 200);
      origin_.clear();  // no CORS headers for it
      SendError(403, "origin " + origin + " may not post here (--http-allowed-origins)");
      return;
    }
    if (path == "/v1/events") {
      if (AnsweredUnlessPost(request, "/v1/events takes POST (and OPTIONS for CORS)")) return;
      EventsRequest events;
      events.body = request.body();
      events.content_type = View(request[bhttp::field::content_type]);
      if (auto it = request.find(bhttp::field::authorization); it != request.end()) {
        events.authorization = View(it->value());
      }
      events.site_key = QueryValue(target, "site");
      events.address = address_;
      Reply reply = shared_.endpoint.Handle(events);
      storage::EventLog* log = shared_.state.log;
      if (reply.durable_lsn > 0 && log != nullptr && log->durable_lsn() < reply.durable_lsn) {
        WaitDurable(std::move(reply));
        return;
      }
      Send(reply);
      return;
    }
    if (path.substr(0, kServicePath.size()) == kServicePath) {
      RouteGrpcWeb(request, path.substr(kServicePath.size()));
      return;
    }
    if (path == "/" || path == "/index.html") {
      if (AnsweredUnlessGet(request, "the live view takes GET")) return;
      Reply reply;
      reply.body = std::string(LiveViewHtml());
      reply.content_type = "text/html; charset=utf-8";
      reply.cache_control = "no-cache";
      page_headers_ = true;
      Send(reply);
      return;
    }
    if (path == "/tracker.js") {
      if (AnsweredUnlessGet(request, "/tracker.js takes GET")) return;
      Reply reply;
      reply.body = std::string(TrackerJs());
      reply.content_type = "application/javascript; charset=utf-8";
      reply.cache_control = "public, max-age=3600";
      Send(reply);
      return;
    }
    if (path == "/healthz") {
      if (AnsweredUnlessGet(request, "/healthz takes GET")) return;
      const bool serving = !shared_.stopping.load(std::memory_order_relaxed) &&
                           !shared_.state.shutting_down.load(std::memory_order_relaxed);
      Reply reply;
      reply.status = serving ? 200 : 503;
      reply.body = serving ? R"({"status":"serving"})" : R"({"status":"not_serving"})";
      Send(reply);
      return;
    }
    SendError(
        404,
        "no such path: " + std::string(path.substr(0, 200)) +
            " (GET / for the live view, POST /v1/events, GET /tracker.js, GET /healthz, gRPC-Web)");
  }

  // --- gRPC-Web: GetMetrics, SubscribeMetrics and SubscribeMetricBatches, on the same code as
  // their gRPC calls (AnswerMetricsQuery; CheckSubscriptionRequest, SubscriberBatch and the
  // hub's shared messages), never a loopback gRPC hop.

  // A CORS preflight (204) or a method other than POST (405): answered here, true.
  bool AnsweredUnlessPost(const bhttp::request<bhttp::string_body>& request,
                          const char* refusal) {
    if (request.method() == bhttp::verb::options) {
      Reply reply;
      reply.status = 204;
      preflight_ = true;
      Send(reply);
      return true;
    }
    if (request.method() == bhttp::verb::post) return false;
    allow_ = "POST, OPTIONS";
    SendError(405, refusal);
    return true;
  }

  // A method other than GET or HEAD: 405 answered here, true.
  bool AnsweredUnlessGet(const bhttp::request<bhttp::string_body>& request, const char* refusal) {
    if (request.method() == bhttp::verb::get || request.method() == bhttp::verb::head) {
      return false;
    }
    allow_ = "GET, HEAD";
    SendError(405, refusal);
    return true;
  }

  void RouteGrpcWeb(const bhttp::request<bhttp::string_body>& request, std::string_view name) {
    if (AnsweredUnlessPost(request, "gRPC-Web calls are POST")) return;
    if (!IsGrpcWeb(View(request[bhttp::field::content_type]), &encoding_)) {
      SendError(415,
                "gRPC-Web needs Content-Type application/grpc-web+proto or "
                "application/grpc-web-text, got '" +
                    std::string(View(request[bhttp::field::content_type]).substr(0, 100)) + "'");
      return;
    }
    call_started_ = std::chrono::steady_clock::now();
    if (name == "GetMetrics") {
      method_ = Method::kGetMetrics;
    } else if (name == "SubscribeMetrics") {
      method_ = Method::kSubscribeMetrics;
    } else if (name == "SubscribeMetricBatches") {
      method_ = Method::kSubscribeMetricBatches;
    } else if (name == "QueryMetrics") {
      method_ = Method::kQueryMetrics;
    } else {
      SendGrpcWebStatus({grpc::StatusCode::UNIMPLEMENTED,
                         "gRPC-Web serves GetMetrics, QueryMetrics, SubscribeMetrics and "
                         "SubscribeMetricBatches; call " +
                             std::string(name.substr(0, 100)) + " on the gRPC port"},
                        /*count=*/false);
      return;
    }
    ServiceState& state = shared_.state;
    auth::Principal principal;
    if (state.auth != nullptr && state.auth->enabled()) {
      auto it = request.find(bhttp::field::authorization);
      const bool present = it != request.end();
      const grpc::Status status =
          state.auth->CheckHeader(present ? View(it->value()) : std::string_view(), present,
                                  MethodName(method_), state.clock.NowMs(), &principal);
      if (!status.ok()) {
        state.metrics.AddAuthRefused(method_, status.error_code());
        SendGrpcWebStatus(status);
        return;
      }
    }
    std::string message;
    if (grpc::Status status = ReadGrpcWebRequest(View(request.body()), encoding_,
                                                 state.config.max_message_bytes, &message);
        !status.ok()) {
      SendGrpcWebStatus(status);
      return;
    }
    if (method_ == Method::kGetMetrics) {
      analytics::MetricsQuery query;
      analytics::MetricsSnapshot snapshot;
      grpc::Status status =
          query.ParseFromString(message)
              ? AnswerMetricsQuery(query, state.default_windows, *state.hub.Latest(), &snapshot)
              : grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a valid MetricsQuery");
      if (!status.ok()) {
        SendGrpcWebStatus(status);
        return;
      }
      Reply reply;
      reply.body = GrpcWebDataFrame(snapshot.SerializeAsString(), encoding_) +
                   GrpcWebTrailerFrame(grpc::Status::OK, encoding_);
      reply.content_type = GrpcWebContentType(encoding_);
      CountCall(grpc::StatusCode::OK);
      Send(reply);
      return;
    }
    if (method_ == Method::kQueryMetrics) {
      RunRangeQuery(message);
      return;
    }
    StartStream(message, principal);
  }

  // An answer with no message: the status in a trailer frame (HTTP 200, as gRPC-Web has it).
  void SendGrpcWebStatus(const grpc::Status& status, bool count = true) {
    Reply reply;
    reply.body = GrpcWebTrailerFrame(status, encoding_);
    reply.content_type = GrpcWebContentType(encoding_);
    if (count) CountCall(status.error_code());
    Send(reply);
  }

  void CountCall(grpc::StatusCode code) {
    shared_.state.metrics.RpcHandled(
        method_, code,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - call_started_).count());
  }

  void StartStream(const std::string& message, const auth::Principal& principal) {
    ServiceState& state = shared_.state;
    analytics::SubscriptionRequest subscription;
    if (!subscription.ParseFromString(message)) {
      SendGrpcWebStatus({grpc::StatusCode::INVALID_ARGUMENT, "not a valid SubscriptionRequest"});
      return;
    }
    std::vector<agg::SegmentCondition> conditions;
    if (std::string error =
            CheckSubscriptionRequest(subscription, state.default_windows, &filter_, &conditions);
        !error.empty()) {
      SendGrpcWebStatus({grpc::StatusCode::INVALID_ARGUMENT, error});
      return;
    }
    if (state.shutting_down.load(std::memory_order_relaxed) ||
        shared_.stopping.load(std::memory_order_relaxed)) {
      SendGrpcWebStatus({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
      return;
    }
    if (grpc::Status status = AdmitSubscriber(state, std::move(conditions), &segment_);
        !status.ok()) {
      SendGrpcWebStatus(status);
      return;
    }
    std::string why;
    if (!state.token_limits.OpenStream(principal.token_id, true, &why)) {
      state.subscribers.fetch_sub(1, std::memory_order_relaxed);
      segment_.reset();
      SendGrpcWebStatus({grpc::StatusCode::RESOURCE_EXHAUSTED, why});
      return;
    }
    token_id_ = principal.token_id;
    registered_ = true;  // EndStream() gives back the subscriber and token slots
    state.metrics.subscribers().Increment();
    streaming_ = true;
    push_on_change_ = subscription.push_on_change();
    interval_ms_ = subscription.interval_ms();
    {
      std::lock_guard lock(shared_.streams_mutex);
      shared_.streams.push_back(shared_from_this());
    }
    LogInfo("subscriber_joined", {{"peer", address_},
                                  {"via", "grpc-web"},
                                  {"dashboard_id", subscription.dashboard_id()},
                                  {"metrics", std::to_string(subscription.metric_types_size())},
                                  {"filters", std::to_string(subscription.filters_size())}});
    std::shared_ptr<const PublishedSnapshot> latest = Latest(state.hub.Latest());
    if (segment_ != nullptr && latest->sequence() == 0) {
      // A segment opens at the next tick: its first snapshot is the initial one.
      pending_request_ = std::make_unique<analytics::SubscriptionRequest>(std::move(subscription));
    } else {
      BuildInitialBatch(subscription, std::move(latest));
    }
    // The answer's header, then one chunk per message (chunked transfer encoding); the
    // connection closes when the stream ends. No read or write deadline from here on: a
    // subscriber is slow only if a write stays pending (slow_subscriber_timeout_ms, checked at
    // each publish, as on gRPC).
    lowest().expires_never();
    beast::error_code ignored;  // a failure leaves the kernel's default: still a bounded buffer
    lowest().socket().set_option(net::socket_base::send_buffer_size(kStreamSendBufferBytes),
                                 ignored);
    stream_header_.emplace(bhttp::status::ok, 11);
    stream_header_->set(bhttp::field::content_type, GrpcWebContentType(encoding_));
    stream_header_->set(bhttp::field::cache_control, "no-store");
    if (!origin_.empty()) {
      stream_header_->set(bhttp::field::access_control_allow_origin, origin_);
      stream_header_->set(bhttp::field::vary, "Origin");
      stream_header_->set(bhttp::field::access_control_expose_headers, "grpc-status, grpc-message");
    }
    stream_header_->keep_alive(false);
    stream_header_->chunked(true);
    header_serializer_.emplace(*stream_header_);
    write_in_flight_ = true;
    write_started_ = std::chrono::steady_clock::now();
    bhttp::async_write_header(stream_, *header_serializer_,
                              [self = shared_from_this()](beast::error_code ec, size_t) {
                                self->OnStreamWrite(ec, /*updates=*/0);
                              });
    WatchForClose();
  }

  std::shared_ptr<const PublishedSnapshot> Latest(
      const std::shared_ptr<const PublishedSnapshot>& global) const {
    return segment_ ? segment_->Latest() : global;
  }

  void BuildInitialBatch(const analytics::SubscriptionRequest& subscription,
                         std::shared_ptr<const PublishedSnapshot> latest) {
    static const MetricHistory kNoHistory;  // a live segment keeps no per-second history
    batch_.StartInitial(
        {filter_, interval_ms_, push_on_change_, method_ == Method::kSubscribeMetricBatches},
        subscription, std::move(latest), segment_ ? kNoHistory : shared_.state.hub.history(),
        SteadyMs());
  }

  // A subscriber sends nothing after its request: the socket turning readable means it closed
  // (or broke the protocol). Either way the stream ends.
  void WatchForClose() {
    lowest().socket().async_wait(
        tcp::socket::wait_read,
        net::bind_executor(stream_.get_executor(),
                           [self = shared_from_this()](beast::error_code ec) {
                             if (ec == net::error::operation_aborted || !self->streaming_) return;
                             self->EndStream();
                             self->Close();
                           }));
  }

  void WriteNextFrame() {
    size_t updates = 0;
    CopyMessageBytes(batch_.NextMessage(&updates), &message_bytes_);
    frame_ = GrpcWebDataFrame(message_bytes_, encoding_);
    write_in_flight_ = true;
    write_started_ = std::chrono::steady_clock::now();
    net::async_write(stream_, bhttp::make_chunk(net::buffer(frame_)),
                     [self = shared_from_this(), updates](beast::error_code ec, size_t) {
                       self->OnStreamWrite(ec, updates);
                     });
  }

  void OnStreamWrite(beast::error_code ec, size_t updates) {
    write_in_flight_ = false;
    if (!streaming_) return;
    if (ec) {
      EndStream();
      Close();
      return;
    }
    shared_.state.metrics.AddUpdatesSent(updates);
    if (finish_requested_) {
      FinishStream({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
      return;
    }
    if (pending_request_ != nullptr) return;  // the segment's first snapshot starts it
    if (batch_.HasMessage()) {                // after the header: the initial batch
      WriteNextFrame();
      return;
    }
    batch_.Complete();
    OnPublished(shared_.state.hub.Latest(), /*regular=*/false);
  }

  void OnPublished(const std::shared_ptr<const PublishedSnapshot>& latest, bool regular) {
    if (!streaming_ || finishing_) return;
    if (pending_request_ != nullptr) {
      std::shared_ptr<const PublishedSnapshot> segment_latest = Latest(latest);
      if (segment_latest->sequence() == 0 || write_in_flight_) return;
      BuildInitialBatch(*pending_request_, std::move(segment_latest));
      pending_request_.reset();
      if (batch_.HasMessage()) WriteNextFrame();
      return;
    }
    batch_.NoteTick(regular);
    if (write_in_flight_ || batch_.HasMessage()) {
      if (write_in_flight_ &&
          std::chrono::steady_clock::now() - write_started_ >
              std::chrono::milliseconds(shared_.state.config.slow_subscriber_timeout_ms)) {
        // A reader that stopped reading: its socket buffer is full.
        shared_.state.metrics.AddSlowSubscriberDisconnect();
        LogWarn("subscriber_too_slow", {{"peer", address_}, {"via", "grpc-web"}});
        EndStream();
        Close();
        return;
      }
      if (batch_.NoteMissed(regular)) shared_.state.metrics.AddUpdatesConflated(1);
      return;
    }
    if (batch_.StartDelta(Latest(latest), SteadyMs())) WriteNextFrame();
  }

  // StreamingCall (any thread): onto this connection's strand.
  void NotifyPublished(bool regular) override {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), regular] {
      self->OnPublished(self->shared_.state.hub.Latest(), regular);
    });
  }
  void NotifyShutdown() override {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->streaming_ || self->finishing_) return;
      if (self->write_in_flight_) {
        self->finish_requested_ = true;  // after the write in flight
      } else {
        self->FinishStream({grpc::StatusCode::UNAVAILABLE, "server shutting down"});
      }
    });
  }
  bool push_on_change() const override { return push_on_change_; }

  // The trailers frame and the last chunk; then the connection closes.
  void FinishStream(const grpc::Status& status) {
    finishing_ = true;
    batch_.Release();
    final_code_ = status.error_code();
    frame_ = GrpcWebTrailerFrame(status, encoding_);
    write_in_flight_ = true;
    net::async_write(stream_, bhttp::make_chunk(net::buffer(frame_)),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) {
                         self->EndStream();
                         self->Close();
                         return;
                       }
                       net::async_write(self->stream_, bhttp::make_chunk_last(),
                                        [self](beast::error_code, size_t) {
                                          self->EndStream();
                                          self->Close();
                                        });
                     });
  }

  // Gives back what a subscription holds (idempotent; also from the destructor).
  void EndStream() {
    streaming_ = false;
    if (!registered_) return;
    registered_ = false;
    ServiceState& state = shared_.state;
    state.subscribers.fetch_sub(1, std::memory_order_relaxed);
    state.metrics.subscribers().Decrement();
    state.token_limits.CloseStream(token_id_, true);
    segment_.reset();
    batch_.Release();
    if (active_) {
      active_ = false;
      shared_.active_requests.fetch_sub(1, std::memory_order_relaxed);
      CountCall(final_code_);
      shared_.state.metrics.AddHttpRequest(route_, 200);
    }
    LogInfo("subscriber_left", {{"peer", address_},
                                {"via", "grpc-web"},
                                {"code", std::to_string(static_cast<int>(final_code_))}});
  }

  // Parks this connection until another thread wakes it (Waker()) or kWaitLimit passes; then
  // `resume(woken, ok)` runs on the strand. The pending timer keeps the session alive meanwhile;
  // the waker holds only a weak reference and goes through the gate, so it may fire after the
  // server is gone.
  uint64_t Park(std::function<void(bool woken, bool ok)> resume) {
    resume_ = std::move(resume);
    woken_ = false;
    wake_ok_ = false;
    const uint64_t wait = ++wait_number_;
    wait_timer_.expires_after(kWaitLimit);
    wait_timer_.async_wait(
        [self = shared_from_this(), wait](beast::error_code) { self->OnWaitTimer(wait); });
    return wait;
  }

  std::function<void(bool)> Waker(uint64_t wait) {
    std::weak_ptr<Session> weak = shared_from_this();
    return [gate = shared_.gate, weak, wait](bool ok) {
      std::lock_guard lock(gate->mutex);
      if (!gate->open) return;
      net::post(*gate->io, [weak, wait, ok] {
        if (auto self = weak.lock()) {
          net::dispatch(self->stream_.get_executor(), [self, wait, ok] { self->OnWake(wait, ok); });
        }
      });
    };
  }

  void OnWake(uint64_t wait, bool ok) {
    if (wait != wait_number_ || woken_) return;
    woken_ = true;
    wake_ok_ = ok;
    wait_timer_.cancel();
  }

  void OnWaitTimer(uint64_t wait) {
    if (wait != wait_number_) return;
    ++wait_number_;  // a late OnWake is for a wait that is over
    std::function<void(bool, bool)> resume = std::move(resume_);
    resume(woken_, wake_ok_);
  }

  // Holds the answer until the log is durable up to reply.durable_lsn.
  void WaitDurable(Reply reply) {
    pending_ = std::move(reply);
    const uint64_t wait = Park([this](bool durable, bool ok) {
      if (!durable) {
        close_after_ = true;
        SendError(503,
                  "the event log did not write these events within 60 s; nothing is "
                  "acknowledged: re-send them (their event ids make that safe)");
      } else if (!ok) {
        close_after_ = true;
        SendError(503,
                  "the server stopped before its event log could write these events; "
                  "re-send them (their event ids make that safe)");
      } else {
        Send(pending_);
      }
    });
    shared_.state.log->WhenDurable(pending_.durable_lsn, Waker(wait));
  }

  // QueryMetrics over gRPC-Web: on the range-query thread, as the gRPC call does.
  void RunRangeQuery(const std::string& message) {
    ServiceState& state = shared_.state;
    analytics::RangeQuery query;
    if (!query.ParseFromString(message)) {
      SendGrpcWebStatus({grpc::StatusCode::INVALID_ARGUMENT, "not a valid RangeQuery"});
      return;
    }
    if (state.history == nullptr || state.range_queries == nullptr) {
      SendGrpcWebStatus({grpc::StatusCode::FAILED_PRECONDITION,
                         "this server keeps no history: it runs in memory only (--data-dir \"\")"});
      return;
    }
    auto answer = std::make_shared<std::pair<grpc::Status, analytics::RangeResult>>();
    const uint64_t wait = Park([this, answer](bool answered, bool) {
      if (!answered) {
        SendGrpcWebStatus(
            {grpc::StatusCode::DEADLINE_EXCEEDED, "the range query did not finish within 60 s"});
      } else if (!answer->first.ok()) {
        SendGrpcWebStatus(answer->first);
      } else {
        Reply reply;
        reply.body = GrpcWebDataFrame(answer->second.SerializeAsString(), encoding_) +
                     GrpcWebTrailerFrame(grpc::Status::OK, encoding_);
        reply.content_type = GrpcWebContentType(encoding_);
        CountCall(grpc::StatusCode::OK);
        Send(reply);
      }
    });
    // The runner (and the store it reads) outlive the HTTP server: it stops after it.
    const bool queued =
        state.range_queries->Submit([&state, query = std::move(query), answer, wake = Waker(wait)] {
          answer->first =
              AnswerRangeQuery(query, *state.history, state.clock.NowMs(), &answer->second);
          wake(true);
        });
    if (!queued) {
      ++wait_number_;  // the parked wait is over: its timer's handler does nothing
      wait_timer_.cancel();
      SendGrpcWebStatus({grpc::StatusCode::RESOURCE_EXHAUSTED,
                         "too many range queries are waiting; retry in a moment"});
    }
  }

  void SendError(unsigned status, const std::string& message) {
    Reply reply;
    reply.status = status;
    reply.body = EventsEndpoint::ErrorJson(message);
    if (status == 503) reply.retry_after_s = 1;
    Send(reply);
  }

  void Send(const Reply& reply) {
    response_ = {};
    response_.version(11);
    response_.result(reply.status);
    response_.set(bhttp::field::cache_control,
                  beast::string_view(reply.cache_control.data(), reply.cache_control.size()));
    if (!reply.body.empty()) {
      response_.set(bhttp::field::content_type,
                    beast::string_view(reply.content_type.data(), reply.content_type.size()));
      response_.body() = reply.body;
    }
    if (reply.retry_after_s > 0) {
      response_.set(bhttp::field::retry_after, std::to_string(reply.retry_after_s));
    }
    if (reply.status == 405) response_.set(bhttp::field::allow, allow_);
    if (page_headers_) {
      // The live view: its own inline script and style, data only from this server, no frames.
      response_.set("Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "connect-src 'self'; frame-ancestors 'none'");
      response_.set("X-Content-Type-Options", "nosniff");
      page_headers_ = false;
    }
    if (!origin_.empty()) {
      // Allowed (Route() refused the others): the page's script may read the answer.
      response_.set(bhttp::field::access_control_allow_origin, origin_);
      response_.set(bhttp::field::vary, "Origin");
      response_.set(bhttp::field::access_control_expose_headers, "grpc-status, grpc-message");
      if (preflight_) {
        response_.set(bhttp::field::access_control_allow_methods, "POST, OPTIONS");
        response_.set(bhttp::field::access_control_allow_headers,
                      "Content-Type, Authorization, X-Grpc-Web, X-User-Agent, Grpc-Timeout");
        response_.set(bhttp::field::access_control_max_age, "600");
      }
    }
    preflight_ = false;
    response_.keep_alive(!close_after_);
    response_.prepare_payload();
    status_ = reply.status;
    lowest().expires_after(std::chrono::milliseconds(config().http_request_timeout_ms));
    bhttp::async_write(stream_, response_,
                       beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    if (active_) {
      active_ = false;
      shared_.active_requests.fetch_sub(1, std::memory_order_relaxed);
      shared_.state.metrics.AddHttpRequest(route_, status_);
    }
    if (ec || close_after_) {
      Close();
      return;
    }
    Read();
  }

  // Closes the TCP connection (over TLS without a close_notify: every answer has its length or
  // its last chunk, so a client cannot mistake the end for a truncation).
  void Close() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().close();
  }

  Stream stream_;
  const std::shared_ptr<net::ssl::context> tls_;
  Shared& shared_;
  const std::string address_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> response_;
  net::steady_timer wait_timer_;
  Reply pending_;
  uint64_t wait_number_ = 0;
  bool woken_ = false;
  bool wake_ok_ = false;
  std::function<void(bool, bool)> resume_;
  bool active_ = false;  // counted in shared_.active_requests
  bool close_after_ = false;
  bool preflight_ = false;
  // gRPC-Web.
  GrpcWebEncoding encoding_ = GrpcWebEncoding::kBinary;
  Method method_ = Method::kGetMetrics;
  std::chrono::steady_clock::time_point call_started_;
  // A subscription (streaming_ from its start until it ends; registered_ while it holds a
  // subscriber slot and its token's).
  bool streaming_ = false;
  bool registered_ = false;
  bool write_in_flight_ = false;
  bool finish_requested_ = false;
  bool finishing_ = false;
  bool push_on_change_ = false;
  int64_t interval_ms_ = 0;
  grpc::StatusCode final_code_ = grpc::StatusCode::CANCELLED;
  std::string token_id_;
  MetricFilter filter_;
  SubscriberBatch batch_;
  std::unique_ptr<LiveSegments::Watch> segment_;
  std::unique_ptr<analytics::SubscriptionRequest> pending_request_;
  std::chrono::steady_clock::time_point write_started_;
  std::optional<bhttp::response<bhttp::empty_body>> stream_header_;
  std::optional<bhttp::response_serializer<bhttp::empty_body>> header_serializer_;
  std::string message_bytes_;
  std::string frame_;
  std::string origin_;  // the request's allowed Origin, echoed in the answer
  const char* allow_ = "";     // a 405's Allow header
  bool page_headers_ = false;  // the answer is the live view: security headers for a page
  const char* route_ = "other";
  unsigned status_ = 0;
};

void Accept(Shared& shared);

void OnAccept(Shared& shared, beast::error_code ec, tcp::socket socket) {
  if (ec) {
    if (ec == net::error::operation_aborted || !shared.acceptor.is_open()) return;
    // Out of descriptors or memory: try again shortly rather than spin.
    shared.accept_retry.expires_after(std::chrono::milliseconds(50));
    shared.accept_retry.async_wait([&shared](beast::error_code wait_ec) {
      if (!wait_ec) Accept(shared);
    });
    return;
  }
  beast::error_code endpoint_ec;
  const tcp::endpoint peer = socket.remote_endpoint(endpoint_ec);
  std::string address = endpoint_ec ? std::string("unknown") : peer.address().to_string();
  const ServerConfig& config = shared.state.config;
  bool admitted = shared.connections.load(std::memory_order_relaxed) < config.http_max_connections;
  if (admitted) {
    std::lock_guard lock(shared.addresses_mutex);
    uint32_t& open = shared.connections_per_address[address];
    admitted = open < config.http_max_connections_per_address;
    if (admitted) {
      ++open;
    } else if (open == 0) {
      shared.connections_per_address.erase(address);
    }
  }
  if (!admitted) {
    // Best effort, never blocking: a full socket buffer just loses the explanation.
    static const std::string kRefusal = [] {
      const std::string body = R"({"error":"too many HTTP connections; retry in a second"})";
      return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
             "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(kRefusal), ignored);
    socket.close(ignored);
    shared.state.metrics.AddHttpConnectionRefused();
  } else {
    shared.connections.fetch_add(1, std::memory_order_relaxed);
    shared.state.metrics.http_connections().Increment();
    if (std::shared_ptr<net::ssl::context> tls = shared.CurrentTls()) {
      std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(shared, std::move(address),
                                                                      tls, std::move(socket), *tls)
          ->Start();
    } else {
      std::make_shared<Session<beast::tcp_stream>>(shared, std::move(address), nullptr,
                                                   std::move(socket))
          ->Start();
    }
  }
  Accept(shared);
}

void Accept(Shared& shared) {
  shared.acceptor.async_accept(net::make_strand(shared.io),
                               [&shared](beast::error_code ec, tcp::socket socket) {
                                 OnAccept(shared, ec, std::move(socket));
                               });
}

}  // namespace

HttpServer::HttpServer(ServiceState& state)
    : state_(state), shared_(std::make_shared<Shared>(state)) {}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

bool HttpServer::Start(std::string* error) {
  const std::string& listen = state_.config.http_listen;
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = colon == std::string::npos ? "" : listen.substr(colon + 1);
  beast::error_code ec;
  tcp::resolver resolver(shared_->io);
  const auto endpoints = resolver.resolve(host, port, tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    *error = "cannot listen on " + listen + " (HTTP): " + (ec ? ec.message() : "no address");
    return false;
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  tcp::acceptor& acceptor = shared_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "cannot listen on " + listen + " (HTTP): " + ec.message();
    return false;
  }
  port_ = acceptor.local_endpoint().port();
  Accept(*shared_);
  for (uint32_t i = 0; i < state_.config.http_threads; ++i) {
    threads_.emplace_back([shared = shared_] { shared->io.run(); });
  }
  return true;
}

bool HttpServer::SetTls(const std::string& cert_pem, const std::string& key_pem,
                        const std::string& client_ca_pem, std::string* error) {
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  beast::error_code ec;
  context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                           net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                           net::ssl::context::no_tlsv1_1,
                       ec);
  if (!ec) context->use_certificate_chain(net::buffer(cert_pem), ec);
  if (!ec) context->use_private_key(net::buffer(key_pem), net::ssl::context::pem, ec);
  if (!ec && !client_ca_pem.empty()) {
    // Mutual TLS, as on the gRPC port: a client without a certificate from this CA fails the
    // handshake.
    context->add_certificate_authority(net::buffer(client_ca_pem), ec);
    if (!ec) {
      context->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert, ec);
    }
  }
  if (ec) {
    *error = "TLS for the HTTP port: " + ec.message();
    return false;
  }
  std::lock_guard lock(shared_->tls_mutex);
  shared_->tls = std::move(context);
  return true;
}

void HttpServer::NotifyPublished(bool early) {
  Shared& shared = *shared_;
  // Tick thread, while Stop() may run on another: only atomics and the io_context (alive as
  // long as this object) are touched. A notification posted after Stop() is never run.
  if (shared.stopping.load(std::memory_order_relaxed)) return;
  if (!early) shared.regular_tick_pending.store(true, std::memory_order_seq_cst);
  // One notification in flight: the one already posted reads the newest snapshot.
  if (shared.publish_pending.exchange(true, std::memory_order_seq_cst)) return;
  net::post(shared.io, [&shared] {
    shared.publish_pending.store(false, std::memory_order_seq_cst);
    const bool regular = shared.regular_tick_pending.exchange(false, std::memory_order_seq_cst);
    for (auto& call : shared.LiveStreams()) {
      if (regular || call->push_on_change()) call->NotifyPublished(regular);
    }
  });
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  if (stopped_) return;
  stopped_ = true;
  if (threads_.empty()) return;  // never started
  Shared& shared = *shared_;
  shared.stopping.store(true);
  net::post(shared.acceptor.get_executor(), [&shared] {
    beast::error_code ignored;
    shared.acceptor.close(ignored);
    shared.accept_retry.cancel();
  });
  // Subscriptions never end on their own: each writes its UNAVAILABLE trailers (after the
  // write in flight) within the grace.
  for (auto& call : shared.LiveStreams()) call->NotifyShutdown();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (shared.active_requests.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    std::lock_guard lock(shared.gate->mutex);
    shared.gate->open = false;
  }
  shared.io.stop();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace rta::server::http
