#include "server/analytics_server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <malloc.h>
#include <prometheus/exposer.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "server/access_init.h"
#include "server/analyze_call.h"
#include "server/auth/tls_files.h"
#include "server/cluster/kv_directory_store.h"
#include "server/config_parser.h"
#include "server/directory_store.h"
#include "server/durability.h"
#include "server/get_metrics_call.h"
#include "server/http/http_server.h"
#include "server/ingest_call.h"
#include "server/live_segments.h"
#include "server/log.h"
#include "server/publish_call.h"
#include "server/query_metrics_call.h"
#include "server/reflection_service.h"
#include "server/rollup_writer.h"
#include "server/service_state.h"
#include "server/subscribe_call.h"
#include "server/user_service.h"
#include "server/worker.h"

namespace rta::server {

namespace {

// How often a cluster node asks whether the shared users and tokens changed (a revocation on
// another node is in force here within about this long).
constexpr int kDirectoryPollMs = 1000;

// Stops the Prometheus exposer without civetweb's idle wait. Its accept loop polls the listening
// socket with a 2 s timeout and checks the stop flag only when poll() returns, so every shutdown
// (and every test server) would take 2 s; a connection to our own port wakes it at once.
void StopExposer(std::unique_ptr<prometheus::Exposer>& exposer, const std::string& listen,
                 int port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code error;
  boost::asio::ip::address address = boost::asio::ip::make_address(host, error);
  if (error || address.is_unspecified()) {
    address = address.is_v6() && !error
                  ? boost::asio::ip::address(boost::asio::ip::address_v6::loopback())
                  : boost::asio::ip::address(boost::asio::ip::address_v4::loopback());
  }
  std::atomic<bool> stopped{false};
  std::thread waker([&] {
    boost::asio::io_context io;
    while (!stopped.load()) {
      boost::asio::ip::tcp::socket socket(io);
      boost::system::error_code ignored;
      socket.connect({address, static_cast<unsigned short>(port)}, ignored);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer.reset();
  stopped.store(true);
  waker.join();
}

// The port of a HOST:PORT address (0 when it asks for any free port or does not parse; the
// config validation has refused malformed ones already).
int RequestedPort(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return 0;
  int port = 0;
  for (char ch : listen.substr(colon + 1)) {
    if (ch < '0' || ch > '9' || port > 65535) return 0;
    port = port * 10 + (ch - '0');
  }
  return port;
}

// The gRPC health service name that says whether ingest works (the event log can write).
constexpr char kIngestHealthService[] = "rta.ingest";

// This process's resident memory, from /proc/self/statm (0 if unreadable).
uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// With a data directory the server keeps a history, and events older than the live windows
// (up to the day rollups' retention) are accepted into it.
ServerConfig WithBackfill(ServerConfig config) {
  config.aggregator.backfill_max_age_seconds =
      config.data_dir.empty() ? 0 : int64_t{config.retention_day_days} * 86'400;
  return config;
}

}  // namespace

class AnalyticsServer::Impl {
 public:
  Impl(ServerConfig config, const agg::Clock* clock)
      : config_(WithBackfill(std::move(config))),
        clock_(clock != nullptr ? *clock : system_clock_),
        producers_(config_.max_producers, int64_t{config_.producer_idle_expiry_s} * 1000) {}

  ~Impl() {
    Shutdown(std::chrono::milliseconds(0));
    if (!tls_temp_dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(tls_temp_dir_, ignored);
    }
  }

  bool Start(std::string* error);
  void Shutdown(std::chrono::milliseconds grace);
  void Wait() {
    std::unique_lock lock(lifecycle_mutex_);
    lifecycle_cv_.wait(lock, [this] { return stopped_ || !started_; });
  }
  void Tick(bool early = false);

  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
  agg::Aggregator& aggregator() { return *aggregator_; }
  void SetIngestFault(std::function<grpc::Status(uint64_t, uint64_t)> fault) {
    ingest_fault_for_test_ = std::move(fault);
  }

 private:
  void ScheduleTick();
  void RequestEarlyTick();
  void PostInitialRequests(Worker& worker);
  void MaybeTrimMemory();
  // Opens the data directory and rebuilds the aggregator from it, or makes an empty one in
  // memory-only mode; then the service state around it.
  bool OpenState(std::string* error);
  // With a data directory: the rollup store, caught up with the log, and its writer started.
  bool OpenHistory(std::string* error);
  // --cluster: connects to the NATS cluster and reads its constants (before the aggregator).
  bool OpenCluster(std::string* error);
  // Refuses a listen address beyond loopback without TLS or authentication unless --insecure.
  bool CheckExposure(std::string* error);
  // Checks and stages the TLS files (--tls-cert); true without them.
  bool OpenTls(std::string* error);

 public:
  bool ReloadTls(std::string* error);

 private:
  void UpdateDurabilityMetrics();

  const ServerConfig config_;
  agg::SystemClock system_clock_;
  const agg::Clock& clock_;
  ServerMetrics metrics_;
  ProducerTable producers_;
  // Cluster mode (--cluster): the node's part of the cluster; before durability_, which
  // publishes into it.
  std::unique_ptr<cluster::ClusterNode> cluster_;
  std::unique_ptr<Durability> durability_;  // null in memory-only mode
  // The history (null in memory-only mode): after durability_, whose log it reads.
  std::unique_ptr<RollupWriter> rollups_;
  std::unique_ptr<RangeQueryRunner> range_queries_;
  // Users and tokens: persisted in durability_'s store, or in memory only without a data dir;
  // in cluster mode in the cluster's key-value bucket, shared by every node and reloaded when
  // any node changes it (directory_follower_, declared after users_: stopped before it goes).
  std::unique_ptr<auth::DirectoryStore> directory_store_;
  std::unique_ptr<auth::UserDirectory> users_;
  std::unique_ptr<cluster::DirectoryFollower> directory_follower_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  // userservice.UserService and TokenService (callback API; see user_service.h). Declared
  // before server_: gRPC needs a service to outlive its server.
  ChatHub chat_{1000, 1000};
  std::unique_ptr<auth::TlsFiles> tls_;  // null without --tls-cert
  std::string tls_temp_dir_;             // the staging directory when there is no data dir
  std::unique_ptr<UserServiceImpl> user_service_;
  std::unique_ptr<TokenServiceImpl> token_service_;
  std::unique_ptr<ReflectionService> reflection_service_;
  std::unique_ptr<agg::Aggregator> aggregator_;
  SnapshotHub hub_;
  LiveSegments live_segments_{
      {config_.max_live_segments, int64_t{config_.live_segment_idle_s} * 1000}};
  AsyncAnalyticsService service_;
  std::unique_ptr<ServiceState> state_;
  std::unique_ptr<http::HttpServer> http_;  // null without --http-listen; uses state_
  std::function<grpc::Status(uint64_t, uint64_t)> ingest_fault_for_test_;
  // Tick thread: the accept rate behind analytics_dedupe_effective_horizon_seconds, and the
  // producer table's expiry.
  std::chrono::steady_clock::time_point rate_since_;
  double accepted_since_ = 0;
  std::chrono::steady_clock::time_point next_producer_expiry_;
  bool log_writable_ = true;  // tick thread: the last health seen
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  boost::asio::io_context tick_io_;
  boost::asio::steady_timer tick_timer_{tick_io_};
  boost::asio::steady_timer early_tick_timer_{tick_io_};  // paces early ticks
  std::chrono::steady_clock::time_point next_tick_;
  std::chrono::steady_clock::time_point last_tick_end_;  // guarded by tick_mutex_
  std::thread tick_thread_;
  std::mutex tick_mutex_;  // Tick() runs on the timer thread and from TickForTest()
  uint64_t told_segments_version_ = 0;  // tick_mutex_: live_segments_.open_version() last told
  std::atomic<bool> early_tick_pending_{false};
  std::chrono::steady_clock::time_point next_trim_;  // tick thread only

  std::mutex lifecycle_mutex_;
  std::condition_variable lifecycle_cv_;
  bool started_ = false;  // guarded by lifecycle_mutex_
  bool stopped_ = false;  // guarded by lifecycle_mutex_
};

bool AnalyticsServer::Impl::Start(std::string* error) {
  // Process-wide gRPC switches; idempotent.
  grpc::EnableDefaultHealthCheckService(true);

  // The TLS files are checked before the recovery, which can take minutes on a long event log:
  // a bad file is reported at once. OpenTls checks them again as it stages them.
  if (!config_.tls_cert.empty() &&
      !auth::TlsFiles::Check({config_.tls_cert, config_.tls_key, config_.tls_client_ca}, error)) {
    return false;
  }
  // Recovery comes before the port opens: no client sees the state half rebuilt.
  if (!OpenState(error)) return false;
  if (!OpenTls(error)) return false;
  if (!CheckExposure(error)) return false;

  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls_ != nullptr) credentials = tls_->Credentials();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, credentials, &grpc_port_);
  builder.RegisterService(&service_);
  builder.RegisterService(user_service_.get());
  builder.RegisterService(token_service_.get());
  builder.RegisterService(reflection_service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(config_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(config_.max_message_bytes));
  // Transport limits, set on purpose (see the README's security section).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(config_.max_concurrent_streams_per_connection));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 30 * 60'000);
  // BDP probing grows each stream's flow-control window towards the bandwidth-delay product;
  // with thousands of mostly idle subscriber streams that is memory for nothing.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // gRPC binds with SO_REUSEPORT by default: a second server started on the same port by
  // mistake (or a restart while the old process is still draining) would silently take half
  // the connections. Refuse to start instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  grpc::ResourceQuota quota("analytics_server");
  quota.Resize(config_.memory_quota_bytes);
  quota.SetMaxThreads(64);  // only the sync health service uses threads from it
  builder.SetResourceQuota(quota);

  const unsigned workers =
      config_.workers != 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  for (unsigned i = 0; i < workers; ++i) queues.push_back(builder.AddCompletionQueue());

  // Before any call exists (no worker has started): stop and drain what BuildAndStart made.
  auto abandon_start = [&](const std::string& message) {
    *error = message;
    if (server_ != nullptr) server_->Shutdown();
    for (auto& queue : queues) {
      queue->Shutdown();
      void* tag;
      bool ok;
      while (queue->Next(&tag, &ok)) {
      }
    }
    server_.reset();
    return false;
  };
  server_ = builder.BuildAndStart();
  const int requested_port = RequestedPort(config_.listen);
  if (server_ == nullptr || grpc_port_ == 0 ||
      (requested_port != 0 && grpc_port_ != requested_port)) {
    return abandon_start("cannot listen on " + config_.listen +
                         " (address in use, not a local address, or not HOST:PORT)");
  }
  if (!config_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics_listen);
      exposer_->RegisterCollectable(metrics_.registry());
      const std::vector<int> ports = exposer_->GetListeningPorts();
      metrics_port_ = ports.empty() ? 0 : ports.front();
    } catch (const std::exception& e) {
      // CivetWeb's own words for a port in use are "null context when constructing
      // CivetServer"; the likely causes come first.
      return abandon_start("cannot serve metrics on " + config_.metrics_listen +
                           " (address in use or not a local address; prometheus-cpp: " + e.what() +
                           ")");
    }
  }

  if (!config_.http_listen.empty()) {
    http_ = std::make_unique<http::HttpServer>(*state_);
    std::string why;
    if (tls_ != nullptr) {
      const auth::TlsFiles::Material& tls = tls_->material();
      if (!http_->SetTls(tls.cert, tls.key, tls.client_ca, &why)) {
        http_.reset();
        return abandon_start(why);
      }
    }
    if (!http_->Start(&why)) {
      http_.reset();
      return abandon_start(why);
    }
    http_port_ = http_->port();
  }

  Tick();  // a first snapshot, so that GetMetrics and subscribers never see "nothing yet"
  for (auto& queue : queues)
    workers_.push_back(std::make_unique<Worker>(*state_, std::move(queue)));
  for (auto& worker : workers_) {
    PostInitialRequests(*worker);
    worker->Start();
  }
  next_tick_ = std::chrono::steady_clock::now();
  ScheduleTick();
  tick_thread_ = std::thread([this] { tick_io_.run(); });
  server_->GetHealthCheckService()->SetServingStatus(true);
  server_->GetHealthCheckService()->SetServingStatus(kIngestHealthService, true);
  {
    std::lock_guard lock(lifecycle_mutex_);
    started_ = true;
  }
  if (exposer_) {
    LogInfo("metrics_listening",
            {{"address", config_.metrics_listen}, {"port", std::to_string(metrics_port_)}});
  }
  if (http_) {
    LogInfo("http_listening", {{"address", config_.http_listen},
                               {"port", std::to_string(http_port_)},
                               {"threads", std::to_string(config_.http_threads)}});
  }
  // Last: scripts and tests wait for this line, and then find the other ports' lines above it.
  LogInfo("listening", {{"address", config_.listen},
                        {"port", std::to_string(grpc_port_)},
                        {"workers", std::to_string(workers)},
                        {"tick_ms", std::to_string(config_.tick_ms)}});
  return true;
}

void AnalyticsServer::Impl::PostInitialRequests(Worker& worker) {
  // Many pending requests per method and queue so that bursts of new calls (10,000 dashboards
  // reconnecting after a deploy) do not wait for one request to be re-posted at a time.
  const uint32_t n =
      config_.pending_requests_per_method != 0 ? config_.pending_requests_per_method : 32;
  for (uint32_t i = 0; i < n; ++i) {
    new SubscribeCall(*state_, worker, /*batched=*/false);
    new SubscribeCall(*state_, worker, /*batched=*/true);
    new IngestCall<analytics::EventData>(*state_, worker);
    new IngestCall<analytics::EventBatch>(*state_, worker);
    new PublishCall(*state_, worker);
    new GetMetricsCall(*state_, worker);
    new QueryMetricsCall(*state_, worker);
    new AnalyzeCall(*state_, worker);
  }
}

void AnalyticsServer::Impl::ScheduleTick() {
  next_tick_ += std::chrono::milliseconds(config_.tick_ms);
  const auto now = std::chrono::steady_clock::now();
  if (next_tick_ < now) next_tick_ = now;  // a slow tick delays the next one instead of bunching
  tick_timer_.expires_at(next_tick_);
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled at shutdown
    Tick();
    MaybeTrimMemory();
    ScheduleTick();
  });
}

void AnalyticsServer::Impl::RequestEarlyTick() {
  // Coalesced: while one early tick is pending, the events that ask for another are in it.
  if (early_tick_pending_.exchange(true, std::memory_order_acq_rel)) return;
  boost::asio::post(tick_io_, [this] {
    auto run = [this] {
      // Cleared before the tick, so that an event it misses asks for the next one.
      early_tick_pending_.store(false, std::memory_order_release);
      Tick(/*early=*/true);
    };
    std::chrono::steady_clock::time_point due;
    {
      std::lock_guard lock(tick_mutex_);  // TickForTest() ticks from other threads
      due = last_tick_end_ + std::chrono::milliseconds(config_.push_min_interval_ms);
    }
    if (std::chrono::steady_clock::now() >= due) {
      run();
      return;
    }
    early_tick_timer_.expires_at(due);
    early_tick_timer_.async_wait([run](const boost::system::error_code& ec) {
      if (!ec) run();  // cancelled only at shutdown
    });
  });
}

void AnalyticsServer::Impl::Tick(bool early) {
  std::lock_guard lock(tick_mutex_);
  const auto start = std::chrono::steady_clock::now();
  if (cluster_ != nullptr) {
    cluster_->MergeInto(
        *aggregator_, [this](double delay) { metrics_.ObserveMergeDelay(delay); },
        [this](std::string_view key) { return live_segments_.IdOf(key); });
  }
  live_segments_.BeforeTick(*aggregator_);
  // The partition owners (on every node) count the segments this node keeps: told when they
  // change.
  if (cluster_ != nullptr && live_segments_.open_version() != told_segments_version_) {
    told_segments_version_ = live_segments_.open_version();
    cluster_->SetLiveSegments(live_segments_.OpenKeys());
  }
  // A due checkpoint takes the place of a regular tick (it is one, plus a cut).
  if (!early && durability_ != nullptr &&
      durability_->MaybeCheckpoint(*aggregator_, producers_, hub_)) {
    hub_.Publish(aggregator_->Latest(), early);
  } else {
    hub_.Publish(aggregator_->Tick(), early);
  }
  live_segments_.AfterTick(*aggregator_, early);
  metrics_.UpdateLiveSegments(live_segments_.size(), live_segments_.opened(),
                              live_segments_.refused());
  metrics_.UpdateAggregatorStats(aggregator_->stats());
  if (!early) UpdateDurabilityMetrics();
  if (!early && cluster_ != nullptr) {
    const cluster::ClusterStats stats = cluster_->Stats();
    metrics_.UpdateCluster(stats);
    if (const storage::RollupStore* history = cluster_->history_store(); history != nullptr) {
      // The history's metrics as a single node reports them: the folding is this node's
      // owners', the writes its store's; its "log" is the partial stream.
      RollupWriterStats folded;
      folded.events_folded = stats.history_events;
      folded.writes = stats.history.writes;
      folded.cells_written = stats.history.cells_written;
      folded.write_failures = stats.history.write_failures;
      folded.applied_lsn = stats.history.next_sequence > 0 ? stats.history.next_sequence - 1 : 0;
      metrics_.UpdateHistoryStats(folded, history->DiskBytes(), stats.partials_sequence);
    }
  }
  metrics_.ObserveTick(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  for (auto& worker : workers_) worker->NotifyPublished(early);
  if (http_ != nullptr) http_->NotifyPublished(early);
  last_tick_end_ = std::chrono::steady_clock::now();
}

bool AnalyticsServer::Impl::OpenTls(std::string* error) {
  if (config_.tls_cert.empty()) return true;
  std::string stage_dir = config_.data_dir + "/tls";
  if (config_.data_dir.empty()) {
    char temporary[] = "/tmp/rta-tls-XXXXXX";
    if (::mkdtemp(temporary) == nullptr) {
      *error = "cannot create a TLS staging directory under /tmp";
      return false;
    }
    stage_dir = tls_temp_dir_ = temporary;
  }
  tls_ = auth::TlsFiles::Create({config_.tls_cert, config_.tls_key, config_.tls_client_ca},
                                stage_dir, error);
  if (tls_ == nullptr) return false;
  LogInfo("tls", {{"subject", tls_->subject()},
                  {"client_certificates", config_.tls_client_ca.empty() ? "no" : "required"}});
  return true;
}

bool AnalyticsServer::Impl::ReloadTls(std::string* error) {
  if (tls_ == nullptr) {
    *error = "this server has no TLS (--tls-cert)";
    return false;
  }
  if (!tls_->Reload(error)) return false;
  if (http_ != nullptr) {
    const auth::TlsFiles::Material& tls = tls_->material();
    if (!http_->SetTls(tls.cert, tls.key, tls.client_ca, error)) return false;
  }
  LogInfo("tls_reloaded", {{"subject", tls_->subject()}});
  return true;
}

bool AnalyticsServer::Impl::CheckExposure(std::string* error) {
  const bool authenticated = authenticator_->enabled();
  LogInfo("access", {{"auth", config_.auth},
                     {"tokens_required", authenticated ? "yes" : "no"},
                     {"users", std::to_string(users_->view()->users.size())}});
  if (!config_.http_listen.empty() && !IsLoopbackAddress(config_.http_listen)) {
    // The same rule as the gRPC port's, below: the HTTP port shares its TLS files and tokens.
    std::string http_missing;
    if (tls_ == nullptr) http_missing = "TLS (--tls-cert and --tls-key)";
    if (!authenticated) {
      http_missing += std::string(http_missing.empty() ? "" : " and ") +
                      "authentication (no user yet: run analytics_server --init)";
    }
    if (!http_missing.empty() && config_.insecure == 0) {
      *error = "refusing to serve HTTP on " + config_.http_listen + " beyond loopback without " +
               http_missing + "; listen on 127.0.0.1, or pass --insecure 1 to accept the exposure";
      return false;
    }
    if (!http_missing.empty()) {
      LogWarn("insecure_listen", {{"address", config_.http_listen}, {"without", http_missing}});
    }
  }
  if (IsLoopbackAddress(config_.listen)) return true;
  // Redis's "protected mode", for the same reason: a server that answers anyone on the network
  // should be a decision, not a default.
  std::string missing;
  if (tls_ == nullptr) missing = "TLS (--tls-cert and --tls-key)";
  if (!authenticated) {
    missing += std::string(missing.empty() ? "" : " and ") +
               "authentication (no user yet: run analytics_server --init)";
  }
  if (missing.empty()) return true;
  if (config_.insecure == 0) {
    *error = "refusing to listen on " + config_.listen + " beyond loopback without " + missing +
             "; listen on 127.0.0.1, or pass --insecure 1 to accept the exposure";
    return false;
  }
  LogWarn("insecure_listen", {{"address", config_.listen}, {"without", missing}});
  return true;
}

namespace {

storage::RollupRetention RetentionOf(const ServerConfig& config) {
  return {int64_t{config.retention_minute_days} * 86'400,
          int64_t{config.retention_hour_days} * 86'400,
          int64_t{config.retention_day_days} * 86'400};
}

storage::RollupAccumulator::Limits HistoryLimitsOf(const ServerConfig& config) {
  storage::RollupAccumulator::Limits limits;
  limits.max_values_per_dimension = config.history_max_values;
  limits.segment_visitor_precision = static_cast<int>(config.history_segment_precision);
  limits.minute_visitor_precision = static_cast<int>(config.history_minute_precision);
  return limits;
}

}  // namespace

bool AnalyticsServer::Impl::OpenHistory(std::string* error) {
  RollupWriter::Options options;
  options.dir = config_.data_dir + "/history";
  options.retention = RetentionOf(config_);
  options.limits = HistoryLimitsOf(config_);
  options.flush_interval_ms = static_cast<int>(config_.history_flush_ms);
  rollups_ = RollupWriter::Open(options, *durability_->log(), clock_, error);
  if (rollups_ == nullptr || !rollups_->CatchUp(error)) {
    *error = "the history in " + options.dir + ": " + *error;
    rollups_.reset();
    return false;
  }
  durability_->set_log_floor([writer = rollups_.get()] { return writer->applied_lsn(); });
  rollups_->Start();
  range_queries_ = std::make_unique<RangeQueryRunner>(/*max_waiting=*/64);
  return true;
}

bool AnalyticsServer::Impl::OpenCluster(std::string* error) {
  cluster::ClusterOptions options;
  options.servers = ClusterServers(config_);
  options.node = config_.cluster_node;
  if (options.node.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    options.node = host;
  }
  options.event_stream = config_.cluster_stream;
  options.replicas = static_cast<int>(config_.cluster_replicas);
  options.partitions = config_.cluster_partitions;
  options.lease_ms = static_cast<int>(config_.cluster_lease_ms);
  options.exchange_ms = static_cast<int>(config_.cluster_exchange_ms);
  options.connect_timeout_ms = 30'000;
  options.aggregator = config_.aggregator;
  // The node's history: its own store, filled from the rollups every owner ships.
  options.history_dir = config_.data_dir + "/history";
  options.history_retention = RetentionOf(config_);
  options.history_limits = HistoryLimitsOf(config_);
  options.history_flush_ms = static_cast<int>(config_.history_flush_ms);
  options.warn = [](const std::string& event, const std::string& detail) {
    LogWarn(event, {{"detail", detail}});
  };
  cluster_ = cluster::ClusterNode::Connect(options, clock_, error);
  if (cluster_ == nullptr) {
    *error = "cluster: " + *error;
    return false;
  }
  LogInfo("cluster_joined", {{"node", options.node},
                             {"partitions", std::to_string(options.partitions)},
                             {"lease_ms", std::to_string(options.lease_ms)},
                             {"exchange_ms", std::to_string(options.exchange_ms)}});
  return true;
}

bool AnalyticsServer::Impl::OpenState(std::string* error) {
  if (config_.data_dir.empty()) {
    LogWarn("memory_only",
            {{"detail",
              "--data-dir is empty: nothing is written to disk; acknowledged events are lost "
              "and every number starts from zero when this process stops"}});
    aggregator_ = std::make_unique<agg::Aggregator>(config_.aggregator, clock_);
  } else {
    if (!config_.cluster.empty() && !OpenCluster(error)) return false;
    durability_ = Durability::Open(config_, metrics_, cluster_.get(), error);
    if (durability_ == nullptr) return false;
    aggregator_ = durability_->Recover(clock_, producers_, hub_, error);
    if (aggregator_ == nullptr) {
      durability_.reset();
      return false;
    }
    if (cluster_ != nullptr) {
      if (!cluster_->StartServing(error)) {
        *error = "cluster: " + *error;
        return false;
      }
      range_queries_ = std::make_unique<RangeQueryRunner>(/*max_waiting=*/64);
    } else if (!OpenHistory(error)) {
      return false;
    }
    LogInfo("data_dir", {{"path", config_.data_dir},
                         {"fsync", config_.fsync},
                         {"checkpoint_interval_s", std::to_string(config_.checkpoint_interval_s)}});
  }
  cluster::KvDirectoryStore* cluster_directory = nullptr;
  if (cluster_ != nullptr) {
    auto store = cluster::KvDirectoryStore::Open(ClusterServers(config_),
                                                 static_cast<int>(config_.cluster_replicas),
                                                 /*timeout_ms=*/30'000, error);
    if (store == nullptr) {
      *error = "cluster: users and tokens: " + *error;
      return false;
    }
    cluster_directory = store.get();
    directory_store_ = std::move(store);
  } else if (durability_ != nullptr) {
    directory_store_ = std::make_unique<CheckpointDirectoryStore>(durability_->store());
  }
  users_ = auth::UserDirectory::Load(directory_store_.get(), error);
  if (users_ == nullptr) {
    *error = "users and tokens in " +
             (cluster_directory != nullptr
                  ? std::string("the cluster's bucket ") + cluster::KvDirectoryStore::kBucket
                  : config_.data_dir + "/store") +
             ": " + *error;
    return false;
  }
  if (config_.init_admin != 0 && users_->empty()) {
    // Nodes of a cluster started together may each find no user and each make a token for the
    // admin (each in its own data directory); every one of them is valid.
    const std::string token_path = config_.data_dir + "/admin.token";
    std::string token_id;
    if (!CreateFirstAdmin(users_.get(), token_path, &token_id, error)) {
      *error = "init_admin: " + *error;
      return false;
    }
    LogInfo("admin_created", {{"token_id", token_id}, {"token_file", token_path}});
  }
  if (cluster_directory != nullptr) {
    directory_follower_ = std::make_unique<cluster::DirectoryFollower>(
        *cluster_directory, kDirectoryPollMs, [users = users_.get()] {
          std::string why;
          if (!users->Reload(&why)) LogWarn("directory_reload_failed", {{"detail", why}});
        });
  }
  const auth::AuthMode mode = config_.auth == "required" ? auth::AuthMode::kRequired
                              : config_.auth == "off"    ? auth::AuthMode::kOff
                                                         : auth::AuthMode::kAuto;
  authenticator_ = std::make_unique<auth::Authenticator>(*users_, mode);
  const DirectoryAccess access{*users_, *authenticator_, metrics_, clock_};
  user_service_ = std::make_unique<UserServiceImpl>(access, chat_);
  token_service_ = std::make_unique<TokenServiceImpl>(access);
  reflection_service_ = std::make_unique<ReflectionService>(
      std::vector<std::string>{analytics::AnalyticsService::service_full_name(),
                               userservice::UserService::service_full_name(),
                               userservice::TokenService::service_full_name(),
                               "grpc.health.v1.Health",
                               grpc::reflection::v1alpha::ServerReflection::service_full_name()},
      *authenticator_, metrics_, clock_);
  state_ = std::make_unique<ServiceState>(config_, service_, *aggregator_, metrics_, hub_, clock_,
                                          producers_);
  state_->auth = authenticator_.get();
  state_->log = durability_ != nullptr ? durability_->log() : nullptr;
  state_->cluster = cluster_ != nullptr;
  state_->rollups = rollups_.get();
  state_->history = rollups_ != nullptr   ? &rollups_->store()
                    : cluster_ != nullptr ? cluster_->history_store()
                                          : nullptr;
  state_->range_queries = range_queries_.get();
  state_->live_segments = &live_segments_;
  state_->request_early_tick = [this] { RequestEarlyTick(); };
  state_->ingest_fault_for_test = ingest_fault_for_test_;
  rate_since_ = std::chrono::steady_clock::now();
  next_producer_expiry_ = rate_since_ + std::chrono::seconds(60);
  return true;
}

void AnalyticsServer::Impl::UpdateDurabilityMetrics() {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - rate_since_).count();
  if (seconds >= 10) {
    const double accepted = metrics_.accepted_total();
    const double rate = (accepted - accepted_since_) / seconds;
    const double horizon = static_cast<double>(config_.aggregator.dedupe_horizon_seconds);
    const double capacity = static_cast<double>(aggregator_->stats().dedupe_capacity_ids);
    metrics_.SetDedupeEffectiveHorizon(rate > 0 ? std::min(horizon, capacity / rate) : horizon);
    accepted_since_ = accepted;
    rate_since_ = now;
  }
  if (now >= next_producer_expiry_) {
    producers_.Expire(clock_.NowMs());
    next_producer_expiry_ = now + std::chrono::seconds(60);
  }
  metrics_.SetProducers(producers_.size());
  if (durability_ != nullptr) {
    const storage::LogHealth health = durability_->log()->health();
    metrics_.UpdateLogStats(durability_->log()->stats(), health, durability_->log()->durable_lsn());
    if (rollups_ != nullptr) {
      metrics_.UpdateHistoryStats(rollups_->stats(), rollups_->store().DiskBytes(),
                                  durability_->log()->last_lsn());
    }
    if (health.writable != log_writable_) {
      log_writable_ = health.writable;
      // The gRPC health service answers for "rta.ingest" separately: a load balancer can send
      // producers elsewhere while subscribers stay (they keep working on this node).
      if (server_ != nullptr) {
        server_->GetHealthCheckService()->SetServingStatus(kIngestHealthService, health.writable);
      }
      if (health.writable) {
        LogInfo("event_log_writable", {{"detail", "ingest resumed"}});
      } else {
        LogWarn("event_log_not_writable",
                {{"detail", health.message + "; ingest answers UNAVAILABLE until it can write"}});
      }
    }
  }
}

void AnalyticsServer::Impl::MaybeTrimMemory() {
  // glibc returns freed memory to the kernel only from the top of each arena's heap, and keeps
  // one arena per thread that allocated; after a burst (subscribers joining with history, a
  // churn of connections) RSS stayed at its peak for good. malloc_trim(0) also releases the
  // free pages inside the arenas. Chosen over jemalloc by measurement (bench/README.md, "Memory
  // comes back"). On the tick thread, after a regular tick, so a trim never delays a snapshot;
  // its time is in analytics_malloc_trim_seconds_total.
  if (config_.malloc_trim_interval_ms == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_trim_) return;
  next_trim_ = now + std::chrono::milliseconds(config_.malloc_trim_interval_ms);
  const uint64_t before = ResidentBytes();
  malloc_trim(0);
  const uint64_t after = ResidentBytes();
  metrics_.MallocTrimmed(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - now).count(),
      before > after ? before - after : 0);
}

void AnalyticsServer::Impl::Shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(lifecycle_mutex_);
    if (!started_ || stopped_) return;
  }
  LogInfo("shutdown_started", {{"grace_ms", std::to_string(grace.count())}});
  const auto begin = std::chrono::steady_clock::now();
  // 1. Stop accepting: no new requests are posted, load balancers see NOT_SERVING.
  state_->shutting_down.store(true);
  server_->GetHealthCheckService()->SetServingStatus(false);
  // 2. Subscriptions never end on their own: finish them (after their write in flight).
  for (auto& worker : workers_) worker->NotifyShutdown();
  // 3. Other open calls get until the deadline, then gRPC cancels them.
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  // HTTP requests in progress get what is left of the grace (new ones are refused: 503).
  if (http_ != nullptr) {
    const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - begin);
    http_->Stop(std::max(std::chrono::milliseconds(0), grace - spent));
  }
  // 4. No more ticks.
  tick_io_.stop();
  if (tick_thread_.joinable()) tick_thread_.join();
  // 5. Drain every queue to the end: each call frees itself as its last operation completes,
  // and each worker shuts its queue down once no call is left on it.
  for (auto& worker : workers_) worker->ShutdownQueueWhenIdle();
  for (auto& worker : workers_) worker->Join();
  // No call is left: no range query can be waiting, and every record that will be appended is.
  if (range_queries_ != nullptr) range_queries_->Stop();
  // Folds what is durable before the last checkpoint, so that it may truncate the log further.
  if (rollups_ != nullptr) rollups_->Stop();
  if (durability_ != nullptr) {
    // No call is left: the last checkpoint sees everything that was acknowledged.
    durability_->Close(*aggregator_, producers_, hub_);
  }
  // Hands this node's partitions over (released, not left to expire) and stops following the
  // partials.
  cluster_.reset();
  workers_.clear();
  if (exposer_) StopExposer(exposer_, config_.metrics_listen, metrics_port_);
  LogInfo("shutdown_complete",
          {{"elapsed_ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - begin)
                                             .count())}});
  std::lock_guard lock(lifecycle_mutex_);
  stopped_ = true;
  lifecycle_cv_.notify_all();
}

AnalyticsServer::AnalyticsServer(ServerConfig config, const agg::Clock* clock)
    : impl_(std::make_unique<Impl>(std::move(config), clock)) {}
AnalyticsServer::~AnalyticsServer() = default;
bool AnalyticsServer::Start(std::string* error) { return impl_->Start(error); }
bool AnalyticsServer::ReloadTls(std::string* error) { return impl_->ReloadTls(error); }
int AnalyticsServer::grpc_port() const { return impl_->grpc_port_; }
int AnalyticsServer::metrics_port() const { return impl_->metrics_port_; }
int AnalyticsServer::http_port() const { return impl_->http_port_; }
void AnalyticsServer::Shutdown(std::chrono::milliseconds grace) { impl_->Shutdown(grace); }
void AnalyticsServer::Wait() { impl_->Wait(); }
agg::Aggregator& AnalyticsServer::aggregator() { return impl_->aggregator(); }
void AnalyticsServer::TickForTest() { impl_->Tick(); }
void AnalyticsServer::SetIngestFaultForTest(
    std::function<grpc::Status(uint64_t stream, uint64_t message)> fault) {
  impl_->SetIngestFault(std::move(fault));
}

}  // namespace rta::server
