#include "server/storage/checkpoint_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <cstdio>
#include <vector>

namespace rta::storage {
namespace {

constexpr char kColumnFamily[] = "checkpoints";
constexpr char kMetaKey[] = "meta";
constexpr size_t kChunkBytes = 8u << 20;
constexpr uint64_t kFormat = 1;

std::string ChunkKey(const char* part, uint64_t index) {
  char key[48];
  std::snprintf(key, sizeof key, "%s/%08llu", part, static_cast<unsigned long long>(index));
  return key;
}

void PutU64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

bool GetU64(std::string_view* in, uint64_t* value) {
  if (in->size() < 8) return false;
  *value = 0;
  for (int i = 0; i < 8; ++i) {
    *value |= static_cast<uint64_t>(static_cast<unsigned char>((*in)[i])) << (8 * i);
  }
  in->remove_prefix(8);
  return true;
}

// Writes `blob` as chunks part/00000000... and deletes any older chunks after them.
void PutChunks(rocksdb::WriteBatch* batch, rocksdb::ColumnFamilyHandle* family, const char* part,
               const std::string& blob, uint64_t* chunks) {
  *chunks = 0;
  for (size_t offset = 0; offset < blob.size() || *chunks == 0; offset += kChunkBytes) {
    const size_t size = std::min(kChunkBytes, blob.size() - std::min(offset, blob.size()));
    batch->Put(family, ChunkKey(part, *chunks), rocksdb::Slice(blob.data() + offset, size));
    ++*chunks;
    if (blob.empty()) break;
  }
  batch->DeleteRange(family, ChunkKey(part, *chunks), std::string(part) + "/~");
}

bool GetChunks(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family, const char* part,
               uint64_t chunks, std::string* blob, std::string* error) {
  blob->clear();
  std::string value;
  for (uint64_t i = 0; i < chunks; ++i) {
    const rocksdb::Status status = db.Get(rocksdb::ReadOptions(), family, ChunkKey(part, i), &value);
    if (!status.ok()) {
      *error = "checkpoint " + std::string(part) + " chunk " + std::to_string(i) + ": " +
               status.ToString();
      return false;
    }
    blob->append(value);
  }
  return true;
}

}  // namespace

std::unique_ptr<CheckpointStore> CheckpointStore::Open(const std::string& dir,
                                                       std::string* error) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  // Small and rare writes: no need for RocksDB's background thread pools at their defaults.
  options.max_background_jobs = 2;
  options.keep_log_file_num = 5;
  options.max_manifest_file_size = 64 << 20;
  rocksdb::ColumnFamilyOptions family_options;
  // Checkpoint chunks are large values written once and deleted by the next checkpoint: blob
  // files keep them out of the LSM's compactions (written once, not rewritten level by level).
  family_options.enable_blob_files = true;
  family_options.min_blob_size = 4096;
  family_options.enable_blob_garbage_collection = true;
  family_options.write_buffer_size = 64 << 20;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kColumnFamily, family_options},
      {"users", rocksdb::ColumnFamilyOptions()},
      {"tokens", rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  const rocksdb::Status status = rocksdb::DB::Open(options, dir, families, &handles, &db);
  if (!status.ok()) {
    *error = "cannot open the checkpoint store " + dir + ": " + status.ToString();
    return nullptr;
  }
  std::unique_ptr<CheckpointStore> store(new CheckpointStore());
  store->db_.reset(db);
  store->default_ = handles[0];
  store->checkpoints_ = handles[1];
  store->users_ = handles[2];
  store->tokens_ = handles[3];
  return store;
}

CheckpointStore::~CheckpointStore() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* handle : {checkpoints_, default_, users_, tokens_}) {
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle);
  }
  db_->Close();
}

bool CheckpointStore::Save(const Checkpoint& checkpoint, std::string* error) {
  rocksdb::WriteBatch batch;
  uint64_t aggregator_chunks = 0, producer_chunks = 0, history_chunks = 0;
  PutChunks(&batch, checkpoints_, "aggregator", checkpoint.aggregator, &aggregator_chunks);
  PutChunks(&batch, checkpoints_, "producers", checkpoint.producers, &producer_chunks);
  PutChunks(&batch, checkpoints_, "history", checkpoint.history, &history_chunks);
  std::string meta;
  PutU64(&meta, kFormat);
  PutU64(&meta, checkpoint.cut_lsn);
  PutU64(&meta, static_cast<uint64_t>(checkpoint.taken_ms));
  PutU64(&meta, checkpoint.last_sequence);
  PutU64(&meta, aggregator_chunks);
  PutU64(&meta, checkpoint.aggregator.size());
  PutU64(&meta, producer_chunks);
  PutU64(&meta, checkpoint.producers.size());
  PutU64(&meta, history_chunks);
  PutU64(&meta, checkpoint.history.size());
  batch.Put(checkpoints_, kMetaKey, meta);
  rocksdb::WriteOptions options;
  options.sync = true;
  const rocksdb::Status status = db_->Write(options, &batch);
  if (!status.ok()) {
    *error = "writing the checkpoint failed: " + status.ToString();
    return false;
  }
  return true;
}

bool CheckpointStore::Load(Checkpoint* checkpoint, bool* found, std::string* error) {
  std::string meta;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), checkpoints_, kMetaKey, &meta);
  if (status.IsNotFound()) {
    *found = false;
    return true;
  }
  if (!status.ok()) {
    *error = "reading the checkpoint failed: " + status.ToString();
    return false;
  }
  *found = true;
  std::string_view in = meta;
  uint64_t format = 0, taken = 0, aggregator_chunks = 0, aggregator_bytes = 0,
           producer_chunks = 0, producer_bytes = 0, history_chunks = 0, history_bytes = 0;
  if (!GetU64(&in, &format) || format != kFormat || !GetU64(&in, &checkpoint->cut_lsn) ||
      !GetU64(&in, &taken) || !GetU64(&in, &checkpoint->last_sequence) ||
      !GetU64(&in, &aggregator_chunks) || !GetU64(&in, &aggregator_bytes) ||
      !GetU64(&in, &producer_chunks) || !GetU64(&in, &producer_bytes) ||
      !GetU64(&in, &history_chunks) || !GetU64(&in, &history_bytes)) {
    *error = "the checkpoint's meta record is damaged or of an unknown format";
    return false;
  }
  checkpoint->taken_ms = static_cast<int64_t>(taken);
  if (!GetChunks(*db_, checkpoints_, "aggregator", aggregator_chunks, &checkpoint->aggregator,
                 error) ||
      !GetChunks(*db_, checkpoints_, "producers", producer_chunks, &checkpoint->producers,
                 error) ||
      !GetChunks(*db_, checkpoints_, "history", history_chunks, &checkpoint->history, error)) {
    return false;
  }
  if (checkpoint->aggregator.size() != aggregator_bytes ||
      checkpoint->producers.size() != producer_bytes ||
      checkpoint->history.size() != history_bytes) {
    *error = "the checkpoint is incomplete (sizes do not match its meta record)";
    return false;
  }
  return true;
}

rocksdb::ColumnFamilyHandle* CheckpointStore::RecordFamily(std::string_view table,
                                                         std::string* error) const {
  if (table == "users") return users_;
  if (table == "tokens") return tokens_;
  *error = "the store has no table '" + std::string(table) + "'";
  return nullptr;
}

bool CheckpointStore::PutRecord(std::string_view table, std::string_view key,
                                std::string_view value, std::string* error) {
  rocksdb::ColumnFamilyHandle* family = RecordFamily(table, error);
  if (family == nullptr) return false;
  rocksdb::WriteOptions options;
  options.sync = true;
  const rocksdb::Status status = db_->Put(options, family, rocksdb::Slice(key.data(), key.size()),
                                          rocksdb::Slice(value.data(), value.size()));
  if (!status.ok()) *error = "store " + std::string(table) + ": " + status.ToString();
  return status.ok();
}

bool CheckpointStore::DeleteRecord(std::string_view table, std::string_view key,
                                   std::string* error) {
  rocksdb::ColumnFamilyHandle* family = RecordFamily(table, error);
  if (family == nullptr) return false;
  rocksdb::WriteOptions options;
  options.sync = true;
  const rocksdb::Status status =
      db_->Delete(options, family, rocksdb::Slice(key.data(), key.size()));
  if (!status.ok()) *error = "store " + std::string(table) + ": " + status.ToString();
  return status.ok();
}

bool CheckpointStore::ScanRecords(
    std::string_view table,
    const std::function<bool(std::string_view key, std::string_view value)>& fn,
    std::string* error) {
  rocksdb::ColumnFamilyHandle* family = RecordFamily(table, error);
  if (family == nullptr) return false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), family));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!fn(std::string_view(it->key().data(), it->key().size()),
            std::string_view(it->value().data(), it->value().size()))) {
      return true;
    }
  }
  if (!it->status().ok()) {
    *error = "store " + std::string(table) + ": " + it->status().ToString();
    return false;
  }
  return true;
}

}  // namespace rta::storage
