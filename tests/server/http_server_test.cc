// The HTTP front end (server/http): POST /v1/events against the real server on an ephemeral
// loopback port, with a real HTTP client (Boost.Beast) and raw sockets for the abuse cases.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/server/integration_util.h"
#include "tests/support/http_client.h"
#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_users.h"

using nlohmann::json;
using rta::testing::HttpAnswer;
using rta::testing::HttpRequest;
using rta::testing::MakeEvent;
using rta::testing::PostEvents;
using rta::testing::ServerHarness;
using rta::testing::TempDir;
using rta::testing::WaitFor;

namespace {

rta::server::ServerConfig HttpConfig() {
  auto config = ServerHarness::DefaultConfig();
  config.http_listen = "127.0.0.1:0";
  return config;
}

std::string EventJson(const std::string& id, const std::string& type, int64_t time_ms,
                      const std::string& extra = "") {
  return R"({"event_id":")" + id + R"(","event_type":")" + type + R"(","timestamp_ms":)" +
         std::to_string(time_ms) + R"(,"visitor_id":"v1","session_id":"s1")" + extra + "}";
}

// A raw loopback connection, for requests no well-behaved client would send.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Everything until the server closes (or 5 s pass).
  std::string ReadAll() {
    std::string out;
    char buffer[4096];
    ssize_t n;
    while ((n = ::recv(fd_, buffer, sizeof buffer, 0)) > 0) out.append(buffer, n);
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace

TEST_CASE("POST /v1/events counts events as ReportEventBatches does, with its per-event errors",
          "[server][integration][http]") {
  auto config = HttpConfig();
  config.http_events_per_second_per_address = 0;  // one section posts 1,500 events at once
  ServerHarness h(config);
  const int port = h.server().http_port();
  REQUIRE(port > 0);
  const int64_t now = h.clock().NowMs();

  SECTION("one event object") {
    const HttpAnswer answer = PostEvents(port, EventJson("h1", "page_view", now));
    REQUIRE(answer.status == 200);
    CHECK(answer.header("content-type") == "application/json");
    const json counts = json::parse(answer.body);
    CHECK(counts["accepted"] == 1);
    CHECK(counts["duplicates"] == 0);
    CHECK(counts["rejected"] == 0);
    CHECK(h.Metric("page_views", analytics::WINDOW_TOTAL) == 1);
  }
  SECTION("an array, text/plain as sendBeacon sends it, a duplicate, and refusals") {
    const std::string body =
        "[" + EventJson("a1", "page_view", now) + "," + EventJson("a2", "click", now) + "," +
        EventJson("a1", "page_view", now) + "," +
        EventJson("a3", "purchase", now, R"(,"value":"12.5")") + "," +
        EventJson("a4", "page_view", now - 90LL * 86'400'000) + "," + R"({"event_type":3})" + "," +
        EventJson("a5", "purchase", now, R"(,"value":12.5)") + "]";
    const HttpAnswer answer =
        PostEvents(port, body, "", {{"Content-Type", "text/plain;charset=UTF-8"}});
    REQUIRE(answer.status == 200);
    const json counts = json::parse(answer.body);
    CHECK(counts["accepted"] == 3);
    CHECK(counts["duplicates"] == 1);
    CHECK(counts["rejected"] == 3);
    REQUIRE(counts["errors"].size() == 3);
    CHECK(counts["errors"][0] == "event #3 (id a3): value: expected a number, got string");
    CHECK_THAT(counts["errors"][1].get<std::string>(),
               Catch::StartsWith("event #4 (id a4): timestamp_ms: "));
    CHECK(counts["errors"][2] == "event #5: event_type: expected a string, got number");
    CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 3);
    CHECK(h.Metric("revenue", analytics::WINDOW_TOTAL) == 12.5);

    // The same refusal over gRPC reads the same (a value's server-side check, as for a4).
    const auto grpc = h.ReportBatch({MakeEvent("a4", "page_view", now - 90LL * 86'400'000)});
    REQUIRE(grpc.errors_size() == 1);
    CHECK(grpc.errors(0).substr(grpc.errors(0).find(':')) ==
          counts["errors"][1].get<std::string>().substr(
              counts["errors"][1].get<std::string>().find(':')));
  }
  SECTION("a re-sent request counts nothing twice") {
    const std::string body =
        "[" + EventJson("r1", "click", now) + "," + EventJson("r2", "click", now) + "]";
    REQUIRE(json::parse(PostEvents(port, body).body)["accepted"] == 2);
    const json again = json::parse(PostEvents(port, body).body);
    CHECK(again["accepted"] == 0);
    CHECK(again["duplicates"] == 2);
    CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 2);
  }
  SECTION("each body reads afresh: nothing of an earlier request's events carries over") {
    // The HTTP thread reuses one batch (events_endpoint.cc): the second body's events sit
    // where the first's were, and must keep none of their fields.
    const std::string first =
        "[" + EventJson("f1", "purchase", now, R"(,"value":12.5,"country":"DE","page":"/first")") +
        "," +
        EventJson("f2", "page_view", now,
                  R"(,"country":"DE","page":"/first","utm_campaign":"spring")") +
        "]";
    REQUIRE(json::parse(PostEvents(port, first).body)["accepted"] == 2);
    const std::string second = std::string("[") + R"({"event_id":"s0","value":"bad"})" + "," +
                               EventJson("s1", "purchase", now) + "," +
                               EventJson("s2", "page_view", now) + "]";
    const json counts = json::parse(PostEvents(port, second).body);
    CHECK(counts["accepted"] == 2);
    REQUIRE(counts["errors"].size() == 1);
    CHECK(counts["errors"][0] == "event #0 (id s0): value: expected a number, got string");
    CHECK(h.Metric("revenue", analytics::WINDOW_TOTAL) == 12.5);
    CHECK(h.Metric("conversions", analytics::WINDOW_TOTAL) == 2);
    // Pages (of page views), campaigns and countries: only the first body named any.
    const analytics::MetricsSnapshot snapshot =
        h.Snapshot({"top_pages", "top_campaigns", "events_by_country"});
    std::map<std::string, uint64_t> named;  // "metric key" -> count, in WINDOW_TOTAL
    for (const analytics::MetricUpdate& update : snapshot.metrics()) {
      if (update.window() != analytics::WINDOW_TOTAL) continue;
      for (const analytics::TopEntry& entry : update.top()) {
        named[update.metric_type() + " " + entry.key()] += entry.count();
      }
      for (const auto& [label, value] : update.labels()) {
        named[update.metric_type() + " " + value] += static_cast<uint64_t>(update.value());
      }
    }
    std::string seen;
    for (const auto& [what, count] : named) seen += what + "=" + std::to_string(count) + "; ";
    INFO(seen);
    CHECK(named == std::map<std::string, uint64_t>{{"events_by_country DE", 2},
                                                   {"events_by_country unknown", 2},
                                                   {"top_campaigns spring", 1},
                                                   {"top_pages /first", 1}});

    // A body past the batch the thread keeps (1,000 events), then a small one again.
    std::string large = "[";
    for (int i = 0; i < 1'500; ++i) {
      large += (i ? "," : "") + EventJson("l" + std::to_string(i), "click", now);
    }
    large += "]";
    CHECK(json::parse(PostEvents(port, large).body)["accepted"] == 1'500);
    const HttpAnswer after = PostEvents(port, EventJson("after", "click", now));
    INFO(after.status << " " << after.body);
    CHECK(json::parse(after.body)["accepted"] == 1);
    CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 4 + 1'500 + 1);
  }
  SECTION("GET /healthz") {
    const HttpAnswer answer = HttpRequest(port, "GET", "/healthz");
    CHECK(answer.status == 200);
    CHECK(answer.body == R"({"status":"serving"})");
  }
}

TEST_CASE("bad requests on the HTTP port get a clear 4xx, and other clients are served",
          "[server][integration][http]") {
  auto config = HttpConfig();
  config.http_max_body_bytes = 4096;
  config.max_batch_events = 5;
  ServerHarness h(config);
  const int port = h.server().http_port();
  const int64_t now = h.clock().NowMs();
  auto error_of = [](const HttpAnswer& answer) {
    return json::parse(answer.body)["error"].get<std::string>();
  };

  HttpAnswer answer = PostEvents(port, R"({"event_type": page_view})");
  CHECK(answer.status == 400);
  CHECK_THAT(error_of(answer), Catch::StartsWith("body: invalid JSON at column 16: ") &&
                                   Catch::EndsWith("; nothing was counted"));

  answer = PostEvents(port, "42");
  CHECK(answer.status == 400);
  CHECK(error_of(answer) == "body: expected an event object or an array of them, got number");

  answer = PostEvents(port, EventJson("c1", "click", now), "", {{"Content-Type", "image/png"}});
  CHECK(answer.status == 415);
  CHECK_THAT(error_of(answer), Catch::Contains("image/png"));

  std::string six = "[";
  for (int i = 0; i < 6; ++i)
    six += (i ? "," : "") + EventJson("six" + std::to_string(i), "click", now);
  answer = PostEvents(port, six + "]");
  CHECK(answer.status == 413);
  CHECK_THAT(error_of(answer), Catch::Contains("6 events, limit 5 (--max-batch-events)"));

  answer = PostEvents(port, std::string(5000, ' ') + EventJson("big", "click", now));
  CHECK(answer.status == 413);
  CHECK_THAT(error_of(answer), Catch::Contains("4096 bytes (--http-max-body-bytes)"));

  answer = HttpRequest(port, "GET", "/v1/events");
  CHECK(answer.status == 405);
  CHECK(answer.header("allow") == "POST, OPTIONS");

  answer = HttpRequest(port, "GET", "/nowhere");
  CHECK(answer.status == 404);

  answer = HttpRequest(port, "GET", "/healthz", {{"X-Filler", std::string(9000, 'x')}});
  CHECK(answer.status == 431);

  {
    RawConnection raw(port);
    REQUIRE(raw.connected());
    REQUIRE(raw.Send("NOT HTTP AT ALL\r\n\r\n"));
    CHECK_THAT(raw.ReadAll(), Catch::StartsWith("HTTP/1.1 400 Bad Request"));
  }

  // Nothing of the above was counted, and a good request is served as ever.
  answer = PostEvents(port, EventJson("good", "click", now));
  CHECK(answer.status == 200);
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 1);
  const std::string metrics = rta::testing::HttpGet(h.server().metrics_port(), "/metrics");
  CHECK(rta::testing::PrometheusValue(
            metrics, R"(analytics_http_requests_total{code="413",route="/v1/events"})") == 2);
}

TEST_CASE("a client that sends its request slowly is cut off, and others are served meanwhile",
          "[server][integration][http]") {
  auto config = HttpConfig();
  config.http_request_timeout_ms = 500;
  ServerHarness h(config);
  const int port = h.server().http_port();
  RawConnection slow(port);
  REQUIRE(slow.connected());
  const auto start = std::chrono::steady_clock::now();
  std::thread trickle([&] {
    const std::string request = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n";
    for (char c : request) {
      if (!slow.Send(std::string(1, c))) return;
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(3)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  CHECK(PostEvents(port, EventJson("meanwhile", "click", h.clock().NowMs())).status == 200);
  const std::string answer = slow.ReadAll();  // returns when the server closes
  const auto elapsed = std::chrono::steady_clock::now() - start;
  trickle.join();
  CHECK(answer.empty());
  CHECK(elapsed >= std::chrono::milliseconds(450));
  CHECK(elapsed < std::chrono::milliseconds(2500));
}

TEST_CASE("CORS: listed origins get a preflight and their headers, others are refused uncounted",
          "[server][integration][http]") {
  auto config = HttpConfig();
  config.http_allowed_origins = "https://shop.example, http://localhost:3000";
  ServerHarness h(config);
  const int port = h.server().http_port();
  const int64_t now = h.clock().NowMs();

  HttpAnswer answer = HttpRequest(port, "OPTIONS", "/v1/events",
                                  {{"Origin", "https://shop.example"},
                                   {"Access-Control-Request-Method", "POST"},
                                   {"Access-Control-Request-Headers", "content-type"}});
  CHECK(answer.status == 204);
  CHECK(answer.header("access-control-allow-origin") == "https://shop.example");
  CHECK(answer.header("access-control-allow-methods") == "POST, OPTIONS");
  CHECK_THAT(answer.header("access-control-allow-headers"), Catch::Contains("Content-Type"));

  answer = PostEvents(port, EventJson("o1", "click", now), "",
                      {{"Origin", "http://localhost:3000"}, {"Content-Type", "text/plain"}});
  CHECK(answer.status == 200);
  CHECK(answer.header("access-control-allow-origin") == "http://localhost:3000");
  CHECK(answer.header("vary") == "Origin");

  // sendBeacon from another site needs no preflight: the server itself must refuse it.
  answer = PostEvents(port, EventJson("o2", "click", now), "",
                      {{"Origin", "https://evil.example"}, {"Content-Type", "text/plain"}});
  CHECK(answer.status == 403);
  CHECK(answer.header("access-control-allow-origin").empty());
  CHECK_THAT(json::parse(answer.body)["error"].get<std::string>(),
             Catch::Contains("https://evil.example") && Catch::Contains("--http-allowed-origins"));
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 1);
}

TEST_CASE("HTTP connections and events are bounded per client address",
          "[server][integration][http]") {
  auto config = HttpConfig();
  config.http_max_connections_per_address = 2;
  config.http_events_per_second_per_address = 5;
  ServerHarness h(config);
  const int port = h.server().http_port();
  const int64_t now = h.clock().NowMs();

  {
    RawConnection first(port);
    RawConnection second(port);
    REQUIRE(first.connected());
    REQUIRE(second.connected());
    // The server counts a connection once it has accepted it.
    REQUIRE(WaitFor([&] {
      return rta::testing::PrometheusValue(
                 rta::testing::HttpGet(h.server().metrics_port(), "/metrics"),
                 "analytics_http_connections") == 2;
    }));
    RawConnection third(port);
    REQUIRE(third.connected());
    CHECK_THAT(third.ReadAll(), Catch::StartsWith("HTTP/1.1 503 Service Unavailable") &&
                                    Catch::Contains("too many HTTP connections"));
  }
  // Those two are closed now; a new client is served.
  REQUIRE(WaitFor([&] { return HttpRequest(port, "GET", "/healthz").status == 200; }));

  // A second's worth passes at once, charged whole (6 events against a bucket of 5) ...
  std::string six = "[";
  for (int i = 0; i < 6; ++i) {
    six += (i ? "," : "") + EventJson("rate" + std::to_string(i), "click", now);
  }
  CHECK(PostEvents(port, six + "]").status == 200);
  // ... and the debt holds back the next request (the harness's clock stands still).
  const HttpAnswer over = PostEvents(port, EventJson("rate6", "click", now));
  CHECK(over.status == 429);
  CHECK(std::stoi(over.header("retry-after")) >= 1);
  CHECK_THAT(
      json::parse(over.body)["error"].get<std::string>(),
      Catch::Contains("127.0.0.1") && Catch::Contains("--http-events-per-second-per-address"));
  CHECK(h.Metric("events_total", analytics::WINDOW_TOTAL) == 6);
}

TEST_CASE("with tokens required, HTTP posts need a reporter's token or a listed site key",
          "[server][integration][http][auth]") {
  TempDir dir;
  const auto tokens =
      rta::testing::MakeUsersWithTokens(dir.path(), {{"rep", "reporter"}, {"look", "viewer"}});
  auto config = HttpConfig();
  config.data_dir = dir.path();
  config.http_site_keys = "site_shop, site_blog";
  ServerHarness h(config);
  const int port = h.server().http_port();
  const int64_t now = h.clock().NowMs();

  HttpAnswer answer = PostEvents(port, EventJson("t1", "click", now));
  CHECK(answer.status == 401);
  CHECK_THAT(json::parse(answer.body)["error"].get<std::string>(),
             Catch::Contains("Authorization: Bearer") && Catch::Contains("--http-site-keys"));

  answer = PostEvents(port, EventJson("t2", "click", now), "",
                      {{"Authorization", "Bearer " + tokens.at("look")}});
  CHECK(answer.status == 403);

  answer =
      PostEvents(port, EventJson("t3", "click", now), "",
                 {{"Authorization", "Bearer rta_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}});
  CHECK(answer.status == 401);

  answer = PostEvents(port, EventJson("t4", "click", now), "?site=site_unknown");
  CHECK(answer.status == 403);
  CHECK_THAT(json::parse(answer.body)["error"].get<std::string>(), Catch::Contains("site_unknown"));

  answer = PostEvents(port, EventJson("t5", "click", now), "",
                      {{"Authorization", "Bearer " + tokens.at("rep")}});
  CHECK(answer.status == 200);
  answer = PostEvents(port, EventJson("t6", "click", now), "?site=site_blog");
  CHECK(answer.status == 200);

  auto stub = h.NewStub();
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + tokens.at("look"));
  analytics::MetricsQuery request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  analytics::MetricsSnapshot snapshot;
  h.server().TickForTest();
  REQUIRE(stub->GetMetrics(&context, request, &snapshot).ok());
  REQUIRE(snapshot.metrics_size() == 1);
  CHECK(snapshot.metrics(0).value() == 2);
}

TEST_CASE("events posted over HTTP are in the log once acknowledged: a restart keeps them",
          "[server][integration][http][durability]") {
  TempDir dir;
  auto config = HttpConfig();
  config.data_dir = dir.path();
  const int64_t now = rta::testing::NowMs();
  {
    ServerHarness h(config);
    std::string body = "[";
    for (int i = 0; i < 20; ++i) {
      body +=
          (i ? "," : "") + EventJson("d" + std::to_string(i), i % 2 ? "click" : "page_view", now);
    }
    body += R"(,{"event_type":"click","value":"bad"}])";
    const json counts = json::parse(PostEvents(h.server().http_port(), body).body);
    REQUIRE(counts["accepted"] == 20);
    REQUIRE(counts["rejected"] == 1);
    // The history folds the same log record (it reads the events back from its bytes).
    CHECK(WaitFor([&] {
      return rta::testing::PrometheusValue(
                 rta::testing::HttpGet(h.server().metrics_port(), "/metrics"),
                 "analytics_history_events_total") == 20;
    }));
  }
  ServerHarness again(config);
  CHECK(again.Metric("events_total", analytics::WINDOW_TOTAL) == 20);
  CHECK(again.Metric("page_views", analytics::WINDOW_TOTAL) == 10);
  // The ids are remembered too: a client's retry after the restart counts nothing twice.
  const json retry =
      json::parse(PostEvents(again.server().http_port(), EventJson("d0", "page_view", now)).body);
  CHECK(retry["duplicates"] == 1);
}

TEST_CASE("gRPC-Web GetMetrics answers what the gRPC call answers, binary and text",
          "[server][integration][http][grpc-web]") {
  ServerHarness h(HttpConfig());
  const int port = h.server().http_port();
  h.ReportBatch({MakeEvent("g1", "page_view", h.clock().NowMs()),
                 MakeEvent("g2", "purchase", h.clock().NowMs())});
  h.server().TickForTest();
  analytics::MetricsQuery query;
  query.add_metric_types("events_total");
  query.add_metric_types("page_views");
  query.add_windows(analytics::WINDOW_TOTAL);
  analytics::MetricsSnapshot over_grpc;
  {
    grpc::ClientContext context;
    REQUIRE(h.NewStub()->GetMetrics(&context, query, &over_grpc).ok());
  }
  for (const bool text : {false, true}) {
    INFO((text ? "grpc-web-text" : "grpc-web+proto"));
    const HttpAnswer answer = HttpRequest(
        port, "POST", "/analytics.AnalyticsService/GetMetrics",
        {{"Content-Type", text ? "application/grpc-web-text" : "application/grpc-web+proto"},
         {"X-Grpc-Web", "1"}},
        rta::testing::GrpcWebRequestBody(query.SerializeAsString(), text));
    REQUIRE(answer.status == 200);
    CHECK(answer.header("content-type") ==
          (text ? "application/grpc-web-text+proto" : "application/grpc-web+proto"));
    std::vector<rta::testing::GrpcWebFrame> frames;
    REQUIRE(rta::testing::SplitGrpcWebFrames(answer.body, text, &frames));
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].flag == 0);
    analytics::MetricsSnapshot over_web;
    REQUIRE(over_web.ParseFromString(frames[0].payload));
    CHECK(over_web.SerializeAsString() == over_grpc.SerializeAsString());
    CHECK(frames[1].flag == 0x80);
    CHECK(rta::testing::GrpcWebTrailers(frames[1].payload)["grpc-status"] == "0");
  }
}

TEST_CASE("gRPC-Web errors: bad framing, unknown methods and metrics, tokens, content type",
          "[server][integration][http][grpc-web]") {
  TempDir dir;
  const auto tokens =
      rta::testing::MakeUsersWithTokens(dir.path(), {{"look", "viewer"}, {"rep", "reporter"}});
  auto config = HttpConfig();
  config.data_dir = dir.path();
  ServerHarness h(config);
  const int port = h.server().http_port();
  auto call = [&](const std::string& method, const std::string& body,
                  std::map<std::string, std::string> headers = {}) {
    headers["Content-Type"] = "application/grpc-web+proto";
    const HttpAnswer answer =
        HttpRequest(port, "POST", "/analytics.AnalyticsService/" + method, headers, body);
    std::vector<rta::testing::GrpcWebFrame> frames;
    REQUIRE(answer.status == 200);
    REQUIRE(rta::testing::SplitGrpcWebFrames(answer.body, false, &frames));
    REQUIRE(!frames.empty());
    REQUIRE(frames.back().flag == 0x80);
    return rta::testing::GrpcWebTrailers(frames.back().payload);
  };
  analytics::MetricsQuery query;
  query.add_metric_types("no_such_metric");
  const std::string bad_query = rta::testing::GrpcWebRequestBody(query.SerializeAsString(), false);
  const std::string viewer = "Bearer " + tokens.at("look");

  auto trailers = call("GetMetrics", bad_query);
  CHECK(trailers["grpc-status"] == "16");  // UNAUTHENTICATED: no token
  trailers = call("GetMetrics", bad_query, {{"Authorization", "Bearer " + tokens.at("rep")}});
  CHECK(trailers["grpc-status"] == "7");  // PERMISSION_DENIED: a reporter may not read
  trailers = call("GetMetrics", bad_query, {{"Authorization", viewer}});
  CHECK(trailers["grpc-status"] == "3");
  CHECK_THAT(trailers["grpc-message"], Catch::Contains("no_such_metric"));
  trailers = call("GetMetrics", std::string("\x80\0\0\0\0", 5), {{"Authorization", viewer}});
  CHECK(trailers["grpc-status"] == "3");
  CHECK_THAT(trailers["grpc-message"], Catch::Contains("no trailers"));
  trailers = call("GetMetrics", std::string("\0\x10\0\0\0", 5), {{"Authorization", viewer}});
  CHECK(trailers["grpc-status"] == "8");  // RESOURCE_EXHAUSTED: over --max-message-bytes
  trailers = call("ReportEvent", bad_query, {{"Authorization", viewer}});
  CHECK(trailers["grpc-status"] == "12");  // UNIMPLEMENTED over gRPC-Web
  CHECK_THAT(trailers["grpc-message"], Catch::Contains("gRPC port"));

  const HttpAnswer wrong_type =
      HttpRequest(port, "POST", "/analytics.AnalyticsService/GetMetrics",
                  {{"Content-Type", "application/grpc"}, {"Authorization", viewer}}, bad_query);
  CHECK(wrong_type.status == 415);
}

TEST_CASE("gRPC-Web SubscribeMetricBatches streams the snapshot, then changes, then trailers",
          "[server][integration][http][grpc-web]") {
  auto config = HttpConfig();
  config.http_allowed_origins = "http://dashboard.example";
  auto h = std::make_unique<ServerHarness>(config);
  const int port = h->server().http_port();
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  rta::testing::GrpcWebStream stream(port, "SubscribeMetricBatches", request.SerializeAsString(),
                                     {{"Origin", "http://dashboard.example"}});
  REQUIRE(stream.status() == 200);
  // Reads batches until events_total has `value` (false on the trailers or a timeout).
  auto wait_for_total = [&](double value) {
    rta::testing::GrpcWebFrame frame;
    while (stream.Next(&frame, std::chrono::seconds(10))) {
      if (frame.flag != 0) return false;
      analytics::MetricUpdateBatch batch;
      REQUIRE(batch.ParseFromString(frame.payload));
      for (const auto& update : batch.updates()) {
        if (update.metric_type() == "events_total" && update.value() == value) return true;
      }
    }
    return false;
  };
  REQUIRE(wait_for_total(0));
  h->ReportBatch(
      {MakeEvent("s1", "click", h->clock().NowMs()), MakeEvent("s2", "click", h->clock().NowMs())});
  CHECK(wait_for_total(2));
  const std::string metrics = rta::testing::HttpGet(h->server().metrics_port(), "/metrics");
  CHECK(rta::testing::PrometheusValue(metrics, "analytics_subscribers") == 1);
  // Shutdown ends the stream with UNAVAILABLE in its trailers, as on gRPC.
  std::thread stop([&] { h->server().Shutdown(std::chrono::milliseconds(2000)); });
  rta::testing::GrpcWebFrame frame;
  std::map<std::string, std::string> trailers;
  while (stream.Next(&frame, std::chrono::seconds(10))) {
    if (frame.flag == 0x80) trailers = rta::testing::GrpcWebTrailers(frame.payload);
  }
  stop.join();
  CHECK(trailers["grpc-status"] == "14");
  CHECK(trailers["grpc-message"] == "server shutting down");
}

TEST_CASE(
    "a gRPC-Web subscriber that reads late gets at most one update per tick and the exact last "
    "value",
    "[server][integration][http][grpc-web]") {
  ServerHarness h(HttpConfig());
  const int port = h.server().http_port();
  analytics::SubscriptionRequest request;
  request.add_metric_types("events_total");
  request.add_windows(analytics::WINDOW_TOTAL);
  rta::testing::GrpcWebStream stream(port, "SubscribeMetrics", request.SerializeAsString());
  REQUIRE(stream.status() == 200);
  // 60 ticks of changes while the client reads nothing: whatever the socket buffers held or the
  // server folded together, it ends at the final value.
  for (int i = 0; i < 60; ++i) {
    h.ReportBatch({MakeEvent("c" + std::to_string(i), "click", h.clock().NowMs())});
    h.server().TickForTest();
  }
  double last = -1;
  int messages = 0;
  rta::testing::GrpcWebFrame frame;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (last != 60 && std::chrono::steady_clock::now() < deadline &&
         stream.Next(&frame, std::chrono::seconds(5))) {
    REQUIRE(frame.flag == 0);
    analytics::MetricUpdate update;
    REQUIRE(update.ParseFromString(frame.payload));
    if (update.metric_type() == "events_total") last = update.value();
    ++messages;
  }
  CHECK(last == 60);
  INFO("messages " << messages);
  CHECK(messages <= 64);  // the snapshot, its end marker and at most one update per tick
}

TEST_CASE("gRPC-Web QueryMetrics answers what the gRPC call answers, and its errors in trailers",
          "[server][integration][http][grpc-web]") {
  TempDir dir;
  auto config = HttpConfig();
  config.data_dir = dir.path();
  config.history_flush_ms = 100;
  ServerHarness h(config);
  const int port = h.server().http_port();
  const int64_t now = h.clock().NowMs();
  const int64_t day_ms = 86'400'000;
  const int64_t yesterday = now - day_ms;
  auto purchase = MakeEvent("q1", "purchase", yesterday);
  purchase.set_value(12.5);
  REQUIRE(h.ReportBatch({purchase, MakeEvent("q2", "page_view", yesterday + 1000)}).accepted() ==
          2);
  analytics::RangeQuery query;
  query.set_from_ms(yesterday - yesterday % day_ms);
  query.set_to_ms(now);
  query.add_metrics("events_total");
  query.add_metrics("revenue");
  analytics::RangeResult over_grpc;
  REQUIRE(WaitFor([&] {
    over_grpc.Clear();
    grpc::ClientContext context;
    return h.NewStub()->QueryMetrics(&context, query, &over_grpc).ok() &&
           over_grpc.totals_size() == 2 && over_grpc.totals(0) == 2;
  }));
  auto call = [&](const analytics::RangeQuery& q, std::vector<rta::testing::GrpcWebFrame>* frames) {
    const HttpAnswer answer =
        HttpRequest(port, "POST", "/analytics.AnalyticsService/QueryMetrics",
                    {{"Content-Type", "application/grpc-web-text"}},
                    rta::testing::GrpcWebRequestBody(q.SerializeAsString(), true));
    REQUIRE(answer.status == 200);
    REQUIRE(rta::testing::SplitGrpcWebFrames(answer.body, true, frames));
    REQUIRE(!frames->empty());
  };
  std::vector<rta::testing::GrpcWebFrame> frames;
  call(query, &frames);
  REQUIRE(frames.size() == 2);
  analytics::RangeResult over_web;
  REQUIRE(over_web.ParseFromString(frames[0].payload));
  CHECK(over_web.SerializeAsString() == over_grpc.SerializeAsString());
  CHECK(over_web.totals(1) == Approx(12.5));
  CHECK(rta::testing::GrpcWebTrailers(frames[1].payload)["grpc-status"] == "0");

  query.set_step_seconds(90);
  frames.clear();
  call(query, &frames);
  REQUIRE(frames.size() == 1);
  auto trailers = rta::testing::GrpcWebTrailers(frames[0].payload);
  CHECK(trailers["grpc-status"] == "3");
  CHECK_THAT(trailers["grpc-message"], Catch::StartsWith("step_seconds"));
}

TEST_CASE("with --tls-cert the HTTP port speaks TLS only, with the gRPC port's certificate",
          "[server][integration][http][tls]") {
  TempDir dir;
  std::string error;
  REQUIRE(rta::testing::MakeTestCertificates(dir.path(), &error));
  auto config = HttpConfig();
  config.tls_cert = dir.path() + "/server_a.pem";
  config.tls_key = dir.path() + "/server_a.key";
  ServerHarness h(config);
  const int port = h.server().http_port();
  const std::string ca = dir.path() + "/ca.pem";
  const HttpAnswer answer = rta::testing::HttpsRequest(
      port, ca, "POST", "/v1/events", {{"Content-Type", "application/json"}},
      EventJson("tls1", "click", h.clock().NowMs()));
  REQUIRE(answer.status == 200);
  CHECK(json::parse(answer.body)["accepted"] == 1);
  CHECK(rta::testing::HttpsRequest(port, ca, "GET", "/healthz").status == 200);
  // Plain HTTP on the TLS port gets no answer (the handshake fails, the connection closes).
  CHECK(HttpRequest(port, "GET", "/healthz").status == 0);
  // A client that trusts another CA refuses the server.
  CHECK(rta::testing::HttpsRequest(port, dir.path() + "/other_ca.pem", "GET", "/healthz").status ==
        0);
  // The same event again over TLS: the server has it (the gRPC port, TLS too, is not asked here).
  const HttpAnswer again = rta::testing::HttpsRequest(
      port, ca, "POST", "/v1/events", {{"Content-Type", "application/json"}},
      EventJson("tls1", "click", h.clock().NowMs()));
  REQUIRE(again.status == 200);
  CHECK(json::parse(again.body)["duplicates"] == 1);
}

namespace {

// Ticks with changes on every metric family (pages, referrers, devices, page loads): each tick's
// delta for an all-metrics subscription is a few KB.
void TickWithChanges(ServerHarness& h, int tick, int events_per_tick) {
  std::vector<analytics::EventData> events;
  for (int i = 0; i < events_per_tick; ++i) {
    const std::string n = std::to_string(tick) + "-" + std::to_string(i);
    analytics::EventData event = MakeEvent("full-" + n, i % 3 == 0 ? "page_load" : "page_view",
                                           h.clock().NowMs(), "v" + n, "s" + n);
    event.set_page("/page/" + std::to_string(i));
    event.set_referrer("ref" + std::to_string(tick % 7) + ".example");
    event.set_value(100 + tick);
    events.push_back(std::move(event));
  }
  h.ReportBatch(events);
  h.server().TickForTest();
}

analytics::SubscriptionRequest EverythingRequest() {
  analytics::SubscriptionRequest request;  // every metric
  for (auto window : {analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H,
                      analytics::WINDOW_TOTAL}) {
    request.add_windows(window);
  }
  return request;
}

}  // namespace

TEST_CASE(
    "a gRPC-Web subscriber whose socket is full is conflated as on gRPC: fewer batches, the "
    "skipped ticks counted, the exact last values",
    "[server][integration][http][grpc-web]") {
  ServerHarness h(HttpConfig());
  // A 4 KB receive buffer: the server's writes wait as soon as the client stops reading.
  rta::testing::GrpcWebStream stream(h.server().http_port(), "SubscribeMetricBatches",
                                     EverythingRequest().SerializeAsString(), {}, 4096);
  REQUIRE(stream.status() == 200);
  constexpr int kTicks = 300;
  constexpr int kEventsPerTick = 10;
  for (int tick = 0; tick < kTicks; ++tick) TickWithChanges(h, tick, kEventsPerTick);
  const std::string metrics = rta::testing::HttpGet(h.server().metrics_port(), "/metrics");
  const double conflated =
      rta::testing::PrometheusValue(metrics, "analytics_metric_updates_conflated_total");
  INFO("conflated ticks " << conflated);
  CHECK(conflated > 0);
  // Now read: the stream catches up to the exact totals, in fewer batches than ticks, and the
  // batch after a wait says how many ticks it folded.
  double events_total = -1;
  int batches = 0;
  uint64_t skipped = 0;
  rta::testing::GrpcWebFrame frame;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (events_total != kTicks * kEventsPerTick && std::chrono::steady_clock::now() < deadline &&
         stream.Next(&frame, std::chrono::seconds(5))) {
    REQUIRE(frame.flag == 0);
    analytics::MetricUpdateBatch batch;
    REQUIRE(batch.ParseFromString(frame.payload));
    ++batches;
    for (const auto& update : batch.updates()) {
      skipped = std::max<uint64_t>(skipped, update.skipped());
      if (update.metric_type() == "events_total" && update.window() == analytics::WINDOW_TOTAL) {
        events_total = update.value();
      }
    }
  }
  INFO("batches " << batches << ", most ticks folded into one batch " << skipped);
  CHECK(events_total == kTicks * kEventsPerTick);
  CHECK(batches < kTicks);
  CHECK(skipped > 0);
}

TEST_CASE("a gRPC-Web subscriber that stops reading is dropped after the slow-subscriber timeout",
          "[server][integration][http][grpc-web]") {
  auto config = HttpConfig();
  config.slow_subscriber_timeout_ms = 300;
  ServerHarness h(config);
  rta::testing::GrpcWebStream stream(h.server().http_port(), "SubscribeMetricBatches",
                                     EverythingRequest().SerializeAsString(), {}, 4096);
  REQUIRE(stream.status() == 200);
  const int port = h.server().metrics_port();
  auto value = [&](const std::string& series) {
    return rta::testing::PrometheusValue(rta::testing::HttpGet(port, "/metrics"), series);
  };
  REQUIRE(WaitFor([&] { return value("analytics_subscribers") == 1; }));
  // Changes keep coming while the client reads nothing: once a write has waited 300 ms, the
  // next tick ends the stream (bounded: at most 10 s of ticks).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int tick = 0;
  while (value("analytics_subscribers_disconnected_slow_total") < 1 &&
         std::chrono::steady_clock::now() < deadline) {
    TickWithChanges(h, tick++, 10);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO("ticks until dropped " << tick);
  CHECK(value("analytics_subscribers_disconnected_slow_total") == 1);
  CHECK(WaitFor([&] { return value("analytics_subscribers") == 0; }));
  // What was buffered can still be read, then the connection ends (no trailers: it was cut).
  rta::testing::GrpcWebFrame frame;
  int frames = 0;
  while (stream.Next(&frame, std::chrono::seconds(5)) && frames < 100'000) ++frames;
  CHECK(frames < 100'000);
}
