#include "server/cluster/cluster_node.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <thread>

#include "analytics.pb.h"
#include "server/cluster/jetstream_log.h"

namespace rta::cluster {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kConstantsBucket[] = "RTA_CLUSTER";

// The value under `key`, created as `initial` when absent (the first node decides).
bool CreateOrRead(kvStore* kv, const std::string& key, const std::string& initial,
                  std::string* value, std::string* error) {
  uint64_t revision = 0;
  if (kvStore_CreateString(&revision, kv, key.c_str(), initial.c_str()) == NATS_OK) {
    *value = initial;
    return true;
  }
  kvEntry* entry = nullptr;
  const natsStatus status = kvStore_Get(&entry, kv, key.c_str());
  if (status != NATS_OK) {
    *error = "cluster constant " + key + ": " + DescribeNats(status);
    return false;
  }
  *value = kvEntry_ValueString(entry);
  kvEntry_Destroy(entry);
  return true;
}

// The counters an owner keeps that a node adds up: its current owners', plus those of owners
// gone (kept so that the node's totals never go back when a partition moves away).
void AddOwnerCounters(const PartitionOwner& owner, ClusterStats* stats) {
  stats->events_counted += owner.events();
  stats->duplicates += owner.duplicates();
  stats->partials_published += owner.partials();
  stats->owner_restarts += owner.restarts();
  stats->trim_failures += owner.trim_failures();
  stats->history_events += owner.history_events();
  stats->history_bytes += owner.history_bytes();
  stats->history_restored += owner.history_restored();
  stats->history_unrestored += owner.history_unrestored();
  stats->sessions_restored += owner.sessions_restored();
}

}  // namespace

std::unique_ptr<ClusterNode> ClusterNode::Connect(ClusterOptions options, const agg::Clock& clock,
                                                  std::string* error) {
  auto session = NatsSession::Connect(options.servers, 5000, error);
  if (session == nullptr) return nullptr;
  std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(options), clock, std::move(session)));
  if (!node->LoadConstants(error)) return nullptr;
  return node;
}

bool ClusterNode::LoadConstants(std::string* error) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
  kvStore* kv = nullptr;
  for (;;) {
    if (js_KeyValue(&kv, session_->js(), kConstantsBucket) == NATS_OK) break;
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = kConstantsBucket;
    config.History = 1;
    config.Replicas = options_.replicas;
    config.StorageType = js_FileStorage;
    const natsStatus status = js_CreateKeyValue(&kv, session_->js(), &config);
    if (status == NATS_OK) break;
    if (Clock::now() >= deadline) {
      *error = "key-value bucket " + std::string(kConstantsBucket) +
               " not available: " + DescribeNats(status) + ": " + nats_GetLastError(nullptr);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::unique_ptr<kvStore, void (*)(kvStore*)> bucket(kv, kvStore_Destroy);
  const agg::HashSeeds fresh = agg::RandomHashSeeds();
  char text[3 * 17];
  std::snprintf(
      text, sizeof text, "%016llx%016llx%016llx", static_cast<unsigned long long>(fresh.visitor),
      static_cast<unsigned long long>(fresh.session), static_cast<unsigned long long>(fresh.key));
  std::string seeds;
  if (!CreateOrRead(kv, "seeds", text, &seeds, error)) return false;
  unsigned long long parts[3] = {0, 0, 0};
  if (seeds.size() != 48 ||
      std::sscanf(seeds.c_str(), "%16llx%16llx%16llx", &parts[0], &parts[1], &parts[2]) != 3) {
    *error = "cluster constant seeds is not 48 hex digits: \"" + seeds + "\"";
    return false;
  }
  seeds_ = {parts[0], parts[1], parts[2]};
  std::string partitions;
  if (!CreateOrRead(kv, "partitions", std::to_string(options_.partitions), &partitions, error)) {
    return false;
  }
  if (partitions != std::to_string(options_.partitions)) {
    *error = "--cluster-partitions " + std::to_string(options_.partitions) +
             " differs from the cluster's " + partitions +
             " (fixed when the cluster was first started; a new count needs new streams)";
    return false;
  }
  // Each owner's de-dup table holds about 1/partitions of the ids (rounded up to a power of 2,
  // at least 2^14 slots).
  owner_config_ = options_.aggregator;
  owner_config_.export_partials = true;
  owner_config_.hash_seeds = seeds_;
  const uint32_t shift = static_cast<uint32_t>(std::bit_width(options_.partitions - 1));
  owner_config_.dedupe_capacity_log2 =
      std::max<uint32_t>(14, options_.aggregator.dedupe_capacity_log2 > shift
                                 ? options_.aggregator.dedupe_capacity_log2 - shift
                                 : 14);
  return true;
}

ClusterNode::~ClusterNode() {
  leases_.reset();  // lost() for every owned partition: the owners stop, then the leases go
  std::lock_guard lock(owners_mu_);
  owners_.clear();
}

uint32_t ClusterNode::PartitionOf(const analytics::EventData& event) const {
  const std::string& key = !event.session_id().empty()   ? event.session_id()
                           : !event.visitor_id().empty() ? event.visitor_id()
                                                         : event.event_id();
  return static_cast<uint32_t>(StableHash(key, seeds_.session) % options_.partitions);
}

std::unique_ptr<storage::EventLog> ClusterNode::OpenIngestLog(RecordReader read_record,
                                                              std::string* error) {
  JetStreamLogOptions log_options;
  log_options.servers = options_.servers;
  log_options.stream = options_.event_stream;
  log_options.subject = "rta.ev.0";  // the prefix; parts go to rta.ev.<partition>
  log_options.replicas = options_.replicas;
  // Lsns restart at 1 with every process: the message ids must not repeat an earlier
  // incarnation's within JetStream's de-duplication window.
  log_options.writer_id = options_.node + "-" + std::to_string(WallClockMs());
  log_options.connect_timeout_ms = options_.connect_timeout_ms;
  log_options.partitions = options_.partitions;
  log_options.split = [this, read_record = std::move(read_record), scratch = std::string()](
                          std::string_view record, std::vector<std::string>* parts,
                          int64_t* ingest_ms) mutable {
    analytics::EventData stamped;
    return read_record(record, [&](const analytics::EventData& event, int64_t at_ms) {
      *ingest_ms = std::max(*ingest_ms, at_ms);
      const analytics::EventData* out = &event;
      if (event.timestamp_ms() == 0) {  // "now" at the ingest node, not at the owner
        stamped = event;
        stamped.set_timestamp_ms(at_ms);
        out = &stamped;
      }
      scratch.clear();
      out->SerializeToString(&scratch);
      std::string& part = (*parts)[PartitionOf(event)];
      part.push_back(static_cast<char>(0x0A));  // EventBatch.events, field 1, length-delimited
      uint64_t length = scratch.size();
      while (length >= 0x80) {
        part.push_back(static_cast<char>(length | 0x80));
        length >>= 7;
      }
      part.push_back(static_cast<char>(length));
      part += scratch;
    });
  };
  storage::OpenReport report;
  return OpenJetStreamLog(log_options, &report, error);
}

bool ClusterNode::StartServing(std::string* error) {
  PartialMergerOptions merger_options;
  merger_options.servers = options_.servers;
  merger_options.replicas = options_.replicas;
  merger_options.connect_timeout_ms = options_.connect_timeout_ms;
  merger_options.on_restart = [this](const std::string& why) {
    if (options_.warn) options_.warn("cluster_merger_restarted", why);
  };
  if (!options_.history_dir.empty()) {
    tap_ = std::make_unique<PartialTap>();
    merger_options.tap = tap_.get();
  }
  merger_ = PartialMerger::Start(session_.get(), merger_options, error);
  if (merger_ == nullptr) return false;
  segments_ = SegmentRegistry::Open(session_.get(), options_.replicas, options_.connect_timeout_ms,
                                    options_.warn, error);
  if (segments_ == nullptr) {
    *error = "the live segments' bucket: " + *error;
    return false;
  }
  if (!options_.history_dir.empty()) {
    ClusterHistoryOptions history_options;
    history_options.dir = options_.history_dir;
    history_options.retention = options_.history_retention;
    history_options.node = options_.node;
    history_options.tap = tap_.get();
    history_options.warn = options_.warn;
    history_ = ClusterHistory::Open(session_.get(), history_options, clock_, error);
    if (history_ == nullptr) {
      *error = "the history in " + options_.history_dir + ": " + *error;
      return false;
    }
  }

  PartitionLeaseOptions lease_options;
  lease_options.node = options_.node;
  lease_options.partitions = options_.partitions;
  lease_options.lease_ms = options_.lease_ms;
  lease_options.replicas = options_.replicas;
  lease_options.connect_timeout_ms = options_.connect_timeout_ms;
  PartitionLeaseCallbacks callbacks;
  callbacks.acquired = [this](uint32_t partition, uint64_t revision) {
    PartitionOwnerOptions owner;
    owner.servers = options_.servers;
    owner.node = options_.node;
    owner.partition = partition;
    owner.revision = revision;
    owner.event_stream = options_.event_stream;
    owner.replicas = options_.replicas;
    owner.exchange_ms = options_.exchange_ms;
    owner.aggregator = owner_config_;
    owner.history = !options_.history_dir.empty();
    owner.history_limits = options_.history_limits;
    owner.history_flush_ms = options_.history_flush_ms;
    owner.history_store = history_.get();
    owner.on_history_unrestored = [this](uint32_t p, const std::string& why) {
      if (options_.warn) {
        options_.warn("cluster_history_state_unrestored",
                      "partition " + std::to_string(p) + ": " + why);
      }
    };
    owner.segments = [registry = segments_.get()] { return registry->Cluster(); };
    owner.on_restart = [this](uint32_t p, const std::string& why) {
      if (options_.warn)
        options_.warn("cluster_owner_restarted", "partition " + std::to_string(p) + ": " + why);
    };
    owner.on_trim_failed = [this](uint32_t p, const std::string& why) {
      if (options_.warn)
        options_.warn("cluster_trim_failed", "partition " + std::to_string(p) + ": " + why);
    };
    auto started = std::make_unique<PartitionOwner>(session_.get(), std::move(owner), clock_);
    std::lock_guard lock(owners_mu_);
    owners_[partition] = std::move(started);
  };
  callbacks.lost = [this](uint32_t partition) {
    std::unique_ptr<PartitionOwner> gone;
    {
      std::lock_guard lock(owners_mu_);
      auto it = owners_.find(partition);
      if (it == owners_.end()) return;
      gone = std::move(it->second);
      owners_.erase(it);
      AddOwnerCounters(*gone, &retired_);
    }
    gone.reset();  // stops it (outside the lock: Stats() stays quick meanwhile)
  };
  leases_ = PartitionLeases::Start(session_.get(), lease_options, std::move(callbacks), error);
  return leases_ != nullptr;
}

void ClusterNode::SetLiveSegments(const std::vector<std::string>& keys) {
  if (segments_ != nullptr) segments_->SetLocal(keys);
}

size_t ClusterNode::MergeInto(agg::Aggregator& view, const std::function<void(double)>& observe,
                              const std::function<int(std::string_view key)>& segment_id) {
  if (merger_ == nullptr) return 0;
  const int64_t now_ms = WallClockMs();
  return merger_->Drain([&](const MergedPartial& partial) {
    std::string why;
    auto refused = [&](const std::string& what) {
      merge_failures_.fetch_add(1, std::memory_order_relaxed);  // damaged: skipped
      if (options_.warn) {
        options_.warn("cluster_partial_refused",
                      "partition " + std::to_string(partial.partition) + ": " + what);
      }
    };
    if (!partial.record.delta.empty() && !view.MergePartial(partial.record.delta, &why)) {
      refused(why);
      return;
    }
    if (segment_id && !partial.record.segments.empty() &&
        !ForEachSegmentPartial(partial.record.segments, [&](const SegmentPartialView& segment) {
          const int id = segment_id(segment.key);
          if (id >= 0 && !view.MergeSegmentPartial(id, segment.partial, &why)) {
            refused("live segment: " + why);
          }
        })) {
      refused("a malformed live segments section");
    }
    if (observe) observe(std::max<int64_t>(0, now_ms - partial.record.published_ms) / 1000.0);
  });
}

ClusterStats ClusterNode::Stats() const {
  ClusterStats stats;
  {
    std::lock_guard lock(owners_mu_);
    stats = retired_;
    for (const auto& [partition, owner] : owners_) {
      stats.owned.push_back(partition);
      stats.lag_ms[partition] = owner->lag_ms();
      AddOwnerCounters(*owner, &stats);
      stats.segments_counted = std::max(stats.segments_counted, owner->segments_counted());
      stats.segments_skipped = std::max(stats.segments_skipped, owner->segments_skipped());
    }
  }
  if (leases_ != nullptr) stats.members = static_cast<uint32_t>(leases_->Members().size());
  if (history_ != nullptr) stats.history = history_->stats();
  if (merger_ != nullptr) {
    stats.partials_received = merger_->received();
    stats.partials_stale = merger_->stale();
    stats.partials_malformed =
        merger_->malformed() + merge_failures_.load(std::memory_order_relaxed);
    stats.caught_up = merger_->caught_up();
    stats.merger_restarts = merger_->restarts();
    stats.partials_sequence = merger_->sequence();
  }
  return stats;
}

}  // namespace rta::cluster
