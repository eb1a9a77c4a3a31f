#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/service_state.h"

namespace rta::server::http {

// The HTTP/1.1 front end on Boost.Beast (--http-listen): POST /v1/events (events_endpoint.h),
// gRPC-Web (grpc_web.h) for GetMetrics, SubscribeMetrics and SubscribeMetricBatches, GET
// /tracker.js (web/tracker.js), OPTIONS for CORS preflights, GET /healthz. It calls the same
// service code as the gRPC calls, never a loopback gRPC hop.
//
// Bounded: connections (--http-max-connections, and per client address), header size (8 KiB:
// 431), body size (--http-max-body-bytes: 413), the time a request may take to arrive
// (--http-request-timeout-ms: then the connection is closed, so slow-loris clients hold a slot
// for that long at most), and one request at a time per connection (pipelined ones wait).
//
// Threads: --http-threads run one io_context; each connection runs on its own strand. An answer
// that waits for the log (the events must be durable before they are acknowledged) parks on a
// timer of its connection; the log's writer thread only posts a wake-up, through a gate that
// Stop() closes before the io_context goes away.
class HttpServer {
 public:
  explicit HttpServer(ServiceState& state);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // TLS on this port, from the gRPC port's checked files (auth::TlsFiles): new connections
  // use it from then on (also after a SIGHUP reload), open ones keep theirs; TLS 1.2 or later,
  // and with a client CA, mutual TLS. False with *error when OpenSSL refuses the material.
  bool SetTls(const std::string& cert_pem, const std::string& key_pem,
              const std::string& client_ca_pem, std::string* error);
  // Binds config.http_listen and starts the threads; false with *error naming the address.
  bool Start(std::string* error);
  int port() const { return port_; }
  // Tick thread, after each publish (as Worker::NotifyPublished): wakes the gRPC-Web
  // subscriptions (an early snapshot only those with push_on_change).
  void NotifyPublished(bool early);
  // Stops accepting, lets requests in progress finish for up to `grace` (new ones get 503),
  // then closes every connection and joins the threads. Before the log closes: an answer still
  // waiting for it then is never sent (the client sees the connection close and retries; the
  // event ids make that safe). Idempotent.
  void Stop(std::chrono::milliseconds grace);

  struct Shared;

 private:
  ServiceState& state_;
  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace rta::server::http
