#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace rta::storage {

// One checkpoint of the server's state: the aggregator's blob, the producer table, and the log
// position it covers (every record <= cut_lsn is in it; recovery replays the records after).
struct Checkpoint {
  uint64_t cut_lsn = 0;
  int64_t taken_ms = 0;  // wall clock when it was cut
  uint64_t last_sequence = 0;  // the snapshot sequence published at the cut
  std::string aggregator;
  std::string producers;
  std::string history;  // the subscribers' per-second history (MetricHistory::Serialize)
};

// The server's RocksDB store (data_dir/store). It holds the latest checkpoint, in the column
// family "checkpoints", and small keyed records (the users and API tokens of server/auth) in
// the column families "users" and "tokens"; the history issue's rollups get theirs beside them.
//
// A checkpoint is written as one synced WriteBatch (its blob cut into 8 MiB values, a meta
// record naming how many), so a crash leaves either the previous checkpoint or the new one,
// never a mix. Only the latest is kept: the chunks of the previous one are deleted in the same
// batch (DeleteRange), and RocksDB reclaims their space in compaction.
//
// Thread-safety: Save() and Load() from one thread at a time (the server's checkpoint thread,
// or start-up). The record methods from any thread (RocksDB serializes the writes).
class CheckpointStore {
 public:
  static std::unique_ptr<CheckpointStore> Open(const std::string& dir, std::string* error);
  ~CheckpointStore();

  bool Save(const Checkpoint& checkpoint, std::string* error);
  // *found is false (and true returned) when the store holds no checkpoint yet.
  bool Load(Checkpoint* checkpoint, bool* found, std::string* error);

  // Keyed records, each write synced. `table` is "users" or "tokens".
  bool PutRecord(std::string_view table, std::string_view key, std::string_view value,
                 std::string* error);
  bool DeleteRecord(std::string_view table, std::string_view key, std::string* error);
  // Calls `fn` for each record in key order until it returns false.
  bool ScanRecords(std::string_view table,
                   const std::function<bool(std::string_view key, std::string_view value)>& fn,
                   std::string* error);

 private:
  CheckpointStore() = default;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* checkpoints_ = nullptr;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  rocksdb::ColumnFamilyHandle* users_ = nullptr;
  rocksdb::ColumnFamilyHandle* tokens_ = nullptr;
  rocksdb::ColumnFamilyHandle* RecordFamily(std::string_view table, std::string* error) const;
};

}  // namespace rta::storage
