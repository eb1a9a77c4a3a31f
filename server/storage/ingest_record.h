#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rta::storage {

// What one event-log record holds: one ingest message as the client sent it (its protobuf bytes,
// untouched, so that writing the log costs a copy and no re-serialization: the disk sees about
// one byte per byte received), the positions of its events that were NOT accepted (duplicates,
// rejections: skipped on replay), and what the server needs to rebuild its state from the record
// alone: the receive time (the clock the aggregator used: windows, de-duplication horizon) and,
// for PublishEvents, the producer's id, sequence and the batch's counts.
//
// A format of our own, not protobuf, because the message bytes are embedded as they are: a
// wrapping protobuf message would need them copied into a `bytes` field first.
//
// Layout (little-endian): u8 version | u8 kind | i64 ingest_ms | u64 sequence | u32 accepted |
// u32 duplicates | u32 rejected | u16 producer_id length | producer_id | u32 skipped count |
// u32 skipped[...] | message bytes (to the end).
enum class RecordKind : uint8_t {
  kEvent = 1,         // an EventData (ReportEvent)
  kEventBatch = 2,    // an EventBatch (ReportEventBatches)
  kPublish = 3,       // a PublishRequest (PublishEvents)
  kProducerOnly = 4,  // no event accepted: records only the producer's sequence and counts
  kSignal = 5,        // a session-analysis signal (AnalyzeSession): see EncodeSignalMessage
};

struct IngestRecord {
  RecordKind kind = RecordKind::kEvent;
  int64_t ingest_ms = 0;
  std::string_view producer_id;  // PublishEvents only
  uint64_t sequence = 0;         // PublishEvents only
  uint32_t accepted = 0;
  uint32_t duplicates = 0;
  uint32_t rejected = 0;
  std::vector<uint32_t> skipped;  // 0-based positions of events not accepted, ascending
  std::string_view message;       // the message's protobuf bytes
};

// Appends the encoded record to `out` (cleared first).
void EncodeIngestRecord(const IngestRecord& record, std::string* out);

// Decodes `bytes`; the views in `record` point into `bytes`. False with `error` set when the
// record is not one this version wrote.
bool DecodeIngestRecord(std::string_view bytes, IngestRecord* record, std::string* error);

// A kSignal record's message: u8 signal (agg::SessionSignal) | i64 event time, Unix ms (the
// time it was counted at, never 0). Signals are derived by the server, not sent by a client,
// so there are no client bytes to keep as they are; 9 bytes of our own say all of it.
void EncodeSignalMessage(uint8_t signal, int64_t event_ms, std::string* out);
// False when `message` is not 9 bytes.
bool DecodeSignalMessage(std::string_view message, uint8_t* signal, int64_t* event_ms);

}  // namespace rta::storage
