#include "tests/support/server_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rta::testing {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

server::ServerConfig ServerHarness::DefaultConfig() {
  server::ServerConfig config;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "127.0.0.1:0";
  config.workers = 2;
  config.tick_ms = 100;
  config.pending_requests_per_method = 4;
  config.aggregator.dedupe_capacity_log2 = 16;
  config.aggregator.max_sessions = 10'000;
  return config;
}

ServerHarness::ServerHarness(server::ServerConfig config, IngestFault ingest_fault)
    : clock_(NowMs()) {
  server_ = std::make_unique<server::AnalyticsServer>(std::move(config), &clock_);
  if (ingest_fault) server_->SetIngestFaultForTest(std::move(ingest_fault));
  std::string error;
  if (!server_->Start(&error)) throw std::runtime_error("server failed to start: " + error);
}

ServerHarness::IngestFault ServerHarness::FailEveryNthStreamAfterFirstMessage(uint64_t n) {
  return [n](uint64_t stream, uint64_t message) {
    if (message == 1 && stream % n == 0) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected stream failure (test only)");
    }
    return grpc::Status::OK;
  };
}

ServerHarness::~ServerHarness() { server_->Shutdown(std::chrono::milliseconds(0)); }

std::shared_ptr<grpc::Channel> ServerHarness::NewChannel() const {
  grpc::ChannelArguments args;
  // A distinct argument gives each channel its own connection (no subchannel sharing).
  static std::atomic<int> counter{0};
  args.SetInt("rta.test.channel", counter.fetch_add(1));
  return grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<analytics::AnalyticsService::Stub> ServerHarness::NewStub() const {
  return analytics::AnalyticsService::NewStub(NewChannel());
}

analytics::EventResponse ServerHarness::ReportBatch(const std::vector<analytics::EventData>& events,
                                                    grpc::Status* status) {
  auto stub = NewStub();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::EventResponse response;
  auto writer = stub->ReportEventBatches(&context, &response);
  analytics::EventBatch batch;
  for (const auto& event : events) *batch.add_events() = event;
  writer->Write(batch);
  writer->WritesDone();
  grpc::Status result = writer->Finish();
  if (status != nullptr) *status = result;
  return response;
}

analytics::MetricsSnapshot ServerHarness::Snapshot(const std::vector<std::string>& names) {
  server_->TickForTest();
  auto stub = NewStub();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  analytics::MetricsQuery query;
  for (const auto& name : names) query.add_metric_types(name);
  AddEveryWindow(query.mutable_windows());
  analytics::MetricsSnapshot snapshot;
  grpc::Status status = stub->GetMetrics(&context, query, &snapshot);
  if (!status.ok()) throw std::runtime_error("GetMetrics: " + status.error_message());
  return snapshot;
}

double ServerHarness::Metric(const std::string& name, analytics::Window window) {
  const analytics::MetricsSnapshot snapshot = Snapshot({name});
  for (const auto& update : snapshot.metrics()) {
    if (update.window() == window && update.labels().empty()) return update.value();
  }
  return std::numeric_limits<double>::quiet_NaN();
}

analytics::EventData MakeEvent(const std::string& id, const std::string& type, int64_t time_ms,
                               const std::string& visitor, const std::string& session) {
  analytics::EventData event;
  event.set_event_id(id);
  event.set_event_type(type);
  event.set_timestamp_ms(time_ms);
  event.set_visitor_id(visitor);
  event.set_session_id(session);
  event.set_page("/home");
  event.set_country("DE");
  event.set_device("desktop");
  return event;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) response.append(buffer, n);
    }
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

double PrometheusValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace rta::testing
