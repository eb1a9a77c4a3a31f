#include "server/http/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "server/http/events_endpoint.h"
#include "server/http/origin_policy.h"
#include "server/log.h"

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
// An acknowledgement waits for the log at most this long; then 503 (the log is stuck: the
// client re-sends, and the event ids make that safe).
constexpr auto kDurableWaitLimit = std::chrono::seconds(60);

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

const char* RouteLabel(std::string_view path) {
  if (path == "/v1/events") return "/v1/events";
  if (path == "/healthz") return "/healthz";
  return "other";
}

}  // namespace

struct HttpServer::Shared {
  explicit Shared(ServiceState& state_in) : state(state_in), endpoint(state_in) {
    std::string ignored;
    OriginPolicy::Parse(state.config.http_allowed_origins, &origins, &ignored);
    gate->io = &io;
  }

  bool OriginAllowed(std::string_view origin, std::string_view host) const {
    return origins.Allows(origin) || SameOrigin(origin, host);
  }

  ServiceState& state;
  EventsEndpoint endpoint;
  OriginPolicy origins;
  std::shared_ptr<DurableGate> gate = std::make_shared<DurableGate>();
  std::atomic<bool> stopping{false};
  std::atomic<int> active_requests{0};  // read whole, not yet answered
  std::atomic<uint32_t> connections{0};
  std::mutex addresses_mutex;
  std::unordered_map<std::string, uint32_t> connections_per_address;  // guarded
  // Last: destroyed first, with the connections its handlers still own (they use the above).
  net::io_context io;
  tcp::acceptor acceptor{net::make_strand(io)};
  net::steady_timer accept_retry{acceptor.get_executor()};
};

namespace {

using Shared = HttpServer::Shared;

// One connection: read a request (bounded in size and time), answer it, read the next.
// Everything runs on the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Shared& shared, std::string address)
      : stream_(std::move(socket)),
        shared_(shared),
        address_(std::move(address)),
        durable_timer_(stream_.get_executor()) {}

  ~Session() {
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
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  const ServerConfig& config() const { return shared_.state.config; }

  void Read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(config().http_max_body_bytes);
    buffer_.max_size(kHeaderLimit + config().http_max_body_bytes + 4096);
    stream_.expires_after(std::chrono::milliseconds(config().http_request_timeout_ms));
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
    stream_.expires_never();  // until the answer is written (the log wait has its own limit)
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
      if (request.method() == bhttp::verb::options) {
        Reply reply;
        reply.status = 204;
        preflight_ = true;
        Send(reply);
        return;
      }
      if (request.method() != bhttp::verb::post) {
        SendError(405, "/v1/events takes POST (and OPTIONS for CORS)");
        return;
      }
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
    if (path == "/healthz") {
      if (request.method() != bhttp::verb::get && request.method() != bhttp::verb::head) {
        SendError(405, "/healthz takes GET");
        return;
      }
      const bool serving = !shared_.stopping.load(std::memory_order_relaxed) &&
                           !shared_.state.shutting_down.load(std::memory_order_relaxed);
      Reply reply;
      reply.status = serving ? 200 : 503;
      reply.body = serving ? R"({"status":"serving"})" : R"({"status":"not_serving"})";
      Send(reply);
      return;
    }
    SendError(404, "no such path: " + std::string(path.substr(0, 200)) +
                       " (POST /v1/events, GET /healthz)");
  }

  // Parks the answer until the log is durable up to reply.durable_lsn.
  void WaitDurable(Reply reply) {
    pending_ = std::move(reply);
    const uint64_t wait = ++wait_number_;
    durable_signalled_ = false;
    durable_timer_.expires_after(kDurableWaitLimit);
    durable_timer_.async_wait(
        [self = shared_from_this(), wait](beast::error_code) { self->OnDurableTimer(wait); });
    std::weak_ptr<Session> weak = shared_from_this();
    shared_.state.log->WhenDurable(
        pending_.durable_lsn, [gate = shared_.gate, weak, wait](bool ok) {
          std::lock_guard lock(gate->mutex);
          if (!gate->open) return;
          net::post(*gate->io, [weak, wait, ok] {
            if (auto self = weak.lock()) {
              net::dispatch(self->stream_.get_executor(),
                            [self, wait, ok] { self->OnDurable(wait, ok); });
            }
          });
        });
  }

  void OnDurable(uint64_t wait, bool ok) {
    if (wait != wait_number_ || durable_signalled_) return;
    durable_signalled_ = true;
    durable_ok_ = ok;
    durable_timer_.cancel();
  }

  void OnDurableTimer(uint64_t wait) {
    if (wait != wait_number_) return;
    ++wait_number_;  // a late OnDurable is for a wait that is over
    if (!durable_signalled_) {
      close_after_ = true;
      SendError(503,
                "the event log did not write these events within 60 s; nothing is "
                "acknowledged: re-send them (their event ids make that safe)");
    } else if (!durable_ok_) {
      close_after_ = true;
      SendError(503,
                "the server stopped before its event log could write these events; "
                "re-send them (their event ids make that safe)");
    } else {
      Send(pending_);
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
    response_.set(bhttp::field::cache_control, "no-store");
    if (!reply.body.empty()) {
      response_.set(bhttp::field::content_type, "application/json");
      response_.body() = reply.body;
    }
    if (reply.retry_after_s > 0) {
      response_.set(bhttp::field::retry_after, std::to_string(reply.retry_after_s));
    }
    if (reply.status == 405) response_.set(bhttp::field::allow, "POST, OPTIONS");
    if (!origin_.empty()) {
      // Allowed (Route() refused the others): the page's script may read the answer.
      response_.set(bhttp::field::access_control_allow_origin, origin_);
      response_.set(bhttp::field::vary, "Origin");
      if (preflight_) {
        response_.set(bhttp::field::access_control_allow_methods, "POST, OPTIONS");
        response_.set(bhttp::field::access_control_allow_headers, "Content-Type, Authorization");
        response_.set(bhttp::field::access_control_max_age, "600");
      }
    }
    preflight_ = false;
    response_.keep_alive(!close_after_);
    response_.prepare_payload();
    status_ = reply.status;
    stream_.expires_after(std::chrono::milliseconds(config().http_request_timeout_ms));
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

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  Shared& shared_;
  const std::string address_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> response_;
  net::steady_timer durable_timer_;
  Reply pending_;
  uint64_t wait_number_ = 0;
  bool durable_signalled_ = false;
  bool durable_ok_ = false;
  bool active_ = false;  // counted in shared_.active_requests
  bool close_after_ = false;
  bool preflight_ = false;
  std::string origin_;  // the request's allowed Origin, echoed in the answer
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
    std::make_shared<Session>(std::move(socket), shared, std::move(address))->Start();
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
