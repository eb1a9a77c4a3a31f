#include "server/ingest_journal.h"

#include <vector>

#include "server/rollup_writer.h"

namespace rta::server {

void CopyMessageBytes(const grpc::ByteBuffer& buffer, std::string* out) {
  out->clear();
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return;
  size_t total = 0;
  for (const grpc::Slice& slice : slices) total += slice.size();
  out->reserve(total);
  for (const grpc::Slice& slice : slices) {
    out->append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
}

bool JournalAccepts(const ServiceState& state, std::string* why) {
  if (state.log == nullptr) return true;
  const storage::LogHealth health = state.log->health();
  // Over the pending bound the log is healthy but behind: refuse too (backpressure).
  if (health.writable && state.log->stats().pending_bytes > state.config.log_max_pending_bytes) {
    *why = "the server's event log is behind (" + std::to_string(state.log->stats().pending_bytes) +
           " bytes not yet written); nothing of this message was counted; retry later";
    return false;
  }
  if (health.writable) return true;
  *why = "the server cannot write its event log (" + health.message +
         "); nothing of this message was counted; retry later";
  return false;
}

uint64_t AppendToJournal(ServiceState& state, const storage::IngestRecord& record) {
  if (state.log == nullptr) return 0;
  // One encode buffer per thread, reused: no allocation per message once it has grown.
  thread_local std::string encoded;
  storage::EncodeIngestRecord(record, &encoded);
  // Admitted: the events are counted already, so the log must take the record (JournalAccepts
  // checked its health just before); it is refused only when the log is closing, which happens
  // after every call has ended.
  const uint64_t lsn = state.log->AppendAdmitted(encoded);
  if (state.rollups != nullptr) state.rollups->Offer(lsn, encoded);
  return lsn;
}

uint64_t JournalTail(const ServiceState& state) {
  return state.log == nullptr ? 0 : state.log->last_lsn();
}

void CountSignal(ServiceState& state, agg::SessionSignal signal, int64_t event_time_ms) {
  // While the log refuses ingest (a write error, or over its pending bound) a signal is counted
  // unlogged, as in memory-only mode: it holds no client's acknowledgement, and logging it
  // regardless (AppendAdmitted) would grow the log's pending bytes without a bound.
  std::string why;
  if (state.log == nullptr || state.cluster || !JournalAccepts(state, &why)) {
    state.aggregator.RecordSignal(signal, event_time_ms);
    return;
  }
  // The record carries the time it was counted at, so the replay counts it in the same place.
  const int64_t now_ms = state.clock.NowMs();
  const int64_t event_ms = event_time_ms > 0 ? event_time_ms : now_ms;
  thread_local std::string message;
  storage::EncodeSignalMessage(static_cast<uint8_t>(signal), event_ms, &message);
  storage::IngestRecord record;
  record.kind = storage::RecordKind::kSignal;
  record.ingest_ms = now_ms;
  record.message = message;
  const agg::Aggregator::IngestSection section = state.aggregator.EnterIngest();
  state.aggregator.RecordSignal(signal, event_ms);
  AppendToJournal(state, record);
}

}  // namespace rta::server
