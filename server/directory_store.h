#pragma once

#include "server/auth/user_directory.h"
#include "server/storage/checkpoint_store.h"

namespace rta::server {

// The user directory's persistence on the server's RocksDB store (column families "users" and
// "tokens" of data_dir/store). Thread-safety: that of CheckpointStore's record methods.
class CheckpointDirectoryStore final : public auth::DirectoryStore {
 public:
  explicit CheckpointDirectoryStore(storage::CheckpointStore& store) : store_(store) {}

  bool Put(Table table, std::string_view key, std::string_view value, std::string* error) override {
    return store_.PutRecord(Name(table), key, value, error);
  }
  bool Delete(Table table, std::string_view key, std::string* error) override {
    return store_.DeleteRecord(Name(table), key, error);
  }
  bool Scan(Table table,
            const std::function<bool(std::string_view key, std::string_view value)>& fn,
            std::string* error) override {
    return store_.ScanRecords(Name(table), fn, error);
  }

 private:
  static std::string_view Name(Table table) { return table == Table::kUsers ? "users" : "tokens"; }
  storage::CheckpointStore& store_;
};

}  // namespace rta::server
