#include "server/storage/ingest_record.h"

#include <cstring>

namespace rta::storage {
namespace {

constexpr uint8_t kVersion = 1;

template <typename T>
void Put(std::string* out, T value) {
  char bytes[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) {
    bytes[i] = static_cast<char>(static_cast<uint64_t>(value) >> (8 * i));
  }
  out->append(bytes, sizeof(T));
}

template <typename T>
bool Get(std::string_view* in, T* value) {
  if (in->size() < sizeof(T)) return false;
  uint64_t result = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    result |= static_cast<uint64_t>(static_cast<unsigned char>((*in)[i])) << (8 * i);
  }
  *value = static_cast<T>(result);
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace

void EncodeIngestRecord(const IngestRecord& record, std::string* out) {
  out->clear();
  out->reserve(40 + record.producer_id.size() + 4 * record.skipped.size() +
               record.message.size());
  Put<uint8_t>(out, kVersion);
  Put<uint8_t>(out, static_cast<uint8_t>(record.kind));
  Put<int64_t>(out, record.ingest_ms);
  Put<uint64_t>(out, record.sequence);
  Put<uint32_t>(out, record.accepted);
  Put<uint32_t>(out, record.duplicates);
  Put<uint32_t>(out, record.rejected);
  Put<uint16_t>(out, static_cast<uint16_t>(record.producer_id.size()));
  out->append(record.producer_id);
  Put<uint32_t>(out, static_cast<uint32_t>(record.skipped.size()));
  for (uint32_t position : record.skipped) Put<uint32_t>(out, position);
  out->append(record.message);
}

bool DecodeIngestRecord(std::string_view bytes, IngestRecord* record, std::string* error) {
  uint8_t version = 0, kind = 0;
  uint16_t id_length = 0;
  uint32_t skipped = 0;
  if (!Get(&bytes, &version) || version != kVersion) {
    *error = "unknown ingest record version " + std::to_string(version);
    return false;
  }
  if (!Get(&bytes, &kind) || kind < 1 || kind > static_cast<uint8_t>(RecordKind::kSignal) ||
      !Get(&bytes, &record->ingest_ms) || !Get(&bytes, &record->sequence) ||
      !Get(&bytes, &record->accepted) || !Get(&bytes, &record->duplicates) ||
      !Get(&bytes, &record->rejected) || !Get(&bytes, &id_length) || bytes.size() < id_length) {
    *error = "ingest record header damaged";
    return false;
  }
  record->kind = static_cast<RecordKind>(kind);
  record->producer_id = bytes.substr(0, id_length);
  bytes.remove_prefix(id_length);
  if (!Get(&bytes, &skipped) || bytes.size() / 4 < skipped) {
    *error = "ingest record skip list damaged";
    return false;
  }
  record->skipped.resize(skipped);
  for (uint32_t& position : record->skipped) Get(&bytes, &position);
  record->message = bytes;
  return true;
}

void EncodeSignalMessage(uint8_t signal, int64_t event_ms, std::string* out) {
  out->clear();
  Put<uint8_t>(out, signal);
  Put<int64_t>(out, event_ms);
}

bool DecodeSignalMessage(std::string_view message, uint8_t* signal, int64_t* event_ms) {
  return message.size() == 9 && Get(&message, signal) && Get(&message, event_ms);
}

}  // namespace rta::storage
