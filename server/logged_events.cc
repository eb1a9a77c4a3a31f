#include "server/logged_events.h"

#include "server/aggregator/metric_catalog.h"

namespace rta::server {

bool LoggedEventReader::Read(
    uint64_t lsn, std::string_view bytes, storage::IngestRecord* record,
    const std::function<void(const analytics::EventData&, int64_t ingest_ms)>& apply,
    std::string* why, const SignalApply& apply_signal) {
  if (!storage::DecodeIngestRecord(bytes, record, why)) {
    *why = "log record " + std::to_string(lsn) + ": " + *why;
    return false;
  }
  auto apply_all = [&](const auto& events) {
    size_t skip = 0;
    for (int i = 0; i < events.size(); ++i) {
      if (skip < record->skipped.size() && record->skipped[skip] == static_cast<uint32_t>(i)) {
        ++skip;
        continue;
      }
      apply(events.Get(i), record->ingest_ms);
    }
  };
  const void* data = record->message.data();
  const int size = static_cast<int>(record->message.size());
  bool parsed = true;
  switch (record->kind) {
    case storage::RecordKind::kEvent:
      parsed = event_.ParseFromArray(data, size);
      if (parsed) apply(event_, record->ingest_ms);
      break;
    case storage::RecordKind::kEventBatch:
      parsed = batch_.ParseFromArray(data, size);
      if (parsed) apply_all(batch_.events());
      break;
    case storage::RecordKind::kPublish:
      parsed = publish_.ParseFromArray(data, size);
      if (parsed) apply_all(publish_.events());
      break;
    case storage::RecordKind::kProducerOnly:
      break;
    case storage::RecordKind::kSignal: {
      uint8_t signal = 0;
      int64_t event_ms = 0;
      parsed = storage::DecodeSignalMessage(record->message, &signal, &event_ms) &&
               signal < agg::kSignalCount;
      if (parsed && apply_signal) apply_signal(static_cast<agg::SessionSignal>(signal), event_ms);
      break;
    }
  }
  if (!parsed) {
    *why = "log record " + std::to_string(lsn) + ": its message does not parse";
    return false;
  }
  return true;
}

}  // namespace rta::server
