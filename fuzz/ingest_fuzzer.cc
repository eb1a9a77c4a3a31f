// Fuzz target: what the server does with one ingest message from the network.
//
// Input: one selector byte, then the message's wire bytes. An even selector is a ReportEvent
// message (one EventData), an odd one a ReportEventBatches message (an EventBatch). The bytes are
// deserialized the way the async service does it (grpc::SerializationTraits over a ByteBuffer),
// each event goes through EventTally::Ingest (the server's size limits, then Aggregator::Ingest:
// validation, de-duplication, the shard delta), then the aggregator ticks and the snapshot is
// published (snapshot building and serialization of every metric, with the fuzzed keys in it).
// Everything is built fresh per input, on a manual clock, so that a finding replays exactly.
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "analytics.grpc.pb.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/quiet_protobuf.h"
#include "server/aggregator/aggregator.h"
#include "server/aggregator/clock.h"
#include "server/ingest_call.h"
#include "server/producer_table.h"
#include "server/server_config.h"
#include "server/server_metrics.h"
#include "server/service_state.h"
#include "server/snapshot_hub.h"

namespace {

using rta::server::ServerConfig;

constexpr int64_t kNowMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z, the seeds' time

ServerConfig SmallConfig() {
  ServerConfig config;
  config.max_event_bytes = 4096;  // smaller than the default so that inputs can reach it
  config.max_event_properties = 8;
  config.max_batch_events = 64;
  rta::agg::AggregatorConfig& a = config.aggregator;
  a.dedupe_capacity_log2 = 10;  // the smallest the config accepts: evictions are reachable
  a.dimension_cardinality_cap = 4;
  a.top_k_capacity = 16;
  a.max_sessions = 16;
  return config;
}

template <typename Message>
bool Deserialize(const uint8_t* data, size_t size, Message* message) {
  grpc::Slice slice(data, size);
  grpc::ByteBuffer buffer(&slice, 1);
  return grpc::SerializationTraits<Message>::Deserialize(&buffer, message).ok();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  QuietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool batched = (data[0] & 1) != 0;
  ++data;
  --size;

  analytics::EventBatch batch;
  if (batched) {
    if (!Deserialize(data, size, &batch)) return 0;
  } else if (!Deserialize(data, size, batch.add_events())) {
    return 0;
  }

  static const ServerConfig config = SmallConfig();
  // Stateless for our purpose (the service is never registered, metrics are only counted), so
  // shared by every input; the aggregator and the hub hold state and are built per input.
  static rta::server::AsyncAnalyticsService service;
  static rta::server::ServerMetrics metrics;
  // Only PublishEvents batches consult it; EventTally::Ingest never does.
  static rta::server::ProducerTable producers(/*max_producers=*/16, /*idle_expiry_ms=*/60'000);
  rta::agg::ManualClock clock(kNowMs);
  rta::agg::Aggregator aggregator(config.aggregator, clock);
  rta::server::SnapshotHub hub;
  rta::server::ServiceState state(config, service, aggregator, metrics, hub, clock, producers);

  // IngestCall::Consume refuses an oversized batch before ingesting any of it.
  if (static_cast<uint32_t>(batch.events_size()) > config.max_batch_events) return 0;
  rta::server::EventTally tally;
  for (const analytics::EventData& event : batch.events()) tally.Ingest(state, event);
  tally.FlushMetrics(metrics);

  const analytics::EventResponse& response = tally.response();
  // Every event is answered for exactly once.
  RTA_FUZZ_CHECK(response.accepted() + response.duplicates() + response.rejected() ==
                 static_cast<uint64_t>(batch.events_size()));
  // The client can read the response: proto3 strings must stay valid UTF-8 in the errors (an
  // over-long event_id is quoted cut at a character boundary).
  analytics::EventResponse read_back;
  RTA_FUZZ_CHECK(read_back.ParseFromString(response.SerializeAsString()));

  hub.Publish(aggregator.Tick());
  clock.AdvanceMs(61'000);  // past the 1m window: buckets leave it and sums are corrected
  hub.Publish(aggregator.Tick());
  return 0;
}
