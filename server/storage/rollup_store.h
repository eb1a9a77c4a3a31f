#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/storage/rollup_cell.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class CompactionFilter;
}  // namespace rocksdb

namespace rta::storage {

enum class Resolution { kMinute = 0, kHour = 1, kDay = 2 };
inline constexpr size_t kResolutionCount = 3;
int64_t ResolutionSeconds(Resolution resolution);
const char* ResolutionName(Resolution resolution);
// The start of the bucket holding `time_s` (UTC buckets; days start at 00:00 UTC).
int64_t BucketStart(Resolution resolution, int64_t time_s);

// How long each resolution is kept, in seconds of event time before "now".
struct RollupRetention {
  int64_t minute_s = 7 * 86'400;
  int64_t hour_s = 90 * 86'400;
  int64_t day_s = 730 * 86'400;
  int64_t For(Resolution resolution) const;
};

// What a scan decodes of each cell: everything, or the counters only (RollupCell::DecodeCounters;
// the cell handed over then has no sketches).
enum class CellParts { kAll, kCounters };

// One fold into the store: `cell` is merged into the stored cell of `segment` in the bucket
// that holds `time_s` at `resolution`. `segment` is "" for the totals, "dimension=value" for a
// single condition (docs/design/history-and-segments.md); it must not contain a NUL byte.
struct RollupWrite {
  Resolution resolution;
  int64_t time_s;
  std::string segment;
  RollupCell cell;
};

// A u64 meta value's bytes (little-endian), as the store's writers keep their positions.
inline std::string MetaU64(uint64_t value) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &value, 8);
  return out;
}

// The rollups on disk: one RocksDB column family per resolution. A key is the segment, a NUL,
// and the bucket start (8 bytes, big-endian, sign bit flipped), so one segment's buckets are
// contiguous and in time order: a range query for a segment is one seek and a short scan, and a
// breakdown is one scan per value.
//
// Writes are RocksDB merges: a late event's delta (or a minute folded into its hour) is added
// to a cell without reading it first (RollupCell::Merge, associative, in a merge operator).
// Retention is a compaction filter that drops cells whose bucket ended more than the
// resolution's retention before now, so expired data goes when RocksDB compacts, without a
// scan of ours; readers skip expired cells that compaction has not reached yet.
//
// Thread-safety: every method may be called from any thread (RocksDB serializes writes); the
// server calls them from its storage thread, never from a completion-queue thread.
class RollupStore {
 public:
  // `now_s` is the clock retention is measured against (event time, seconds).
  static std::unique_ptr<RollupStore> Open(const std::string& dir, const RollupRetention& retention,
                                           std::function<int64_t()> now_s, std::string* error);
  ~RollupStore();
  RollupStore(const RollupStore&) = delete;
  RollupStore& operator=(const RollupStore&) = delete;

  // All writes in one atomic batch. `sync`: wait until the batch is on disk.
  bool Write(const std::vector<RollupWrite>& writes, bool sync, std::string* error) {
    return Write(writes, {}, sync, error);
  }
  // A meta entry to put, or to delete (`erase`).
  struct MetaWrite {
    std::string key;
    std::string value;
    bool erase = false;
  };
  // The same, with meta entries put or deleted in the same batch (in order): what the writer
  // must keep exactly in step with the cells (the log position they include, admitted values,
  // the session table).
  bool Write(const std::vector<RollupWrite>& writes, const std::vector<MetaWrite>& meta, bool sync,
             std::string* error);
  // A meta entry; *found false when there is none.
  bool GetMeta(const std::string& key, std::string* value, bool* found, std::string* error) const;
  // Every meta entry whose key starts with `prefix`, in key order.
  bool ScanMeta(std::string_view prefix,
                const std::function<void(std::string_view key, std::string_view value)>& fn,
                std::string* error) const;

  // Calls `fn` for each stored cell of `segment` whose bucket starts in [from_s, to_s), in time
  // order, leaving out expired cells. A cell that does not decode is an error naming its key.
  bool Scan(Resolution resolution, std::string_view segment, int64_t from_s, int64_t to_s,
            const std::function<void(int64_t bucket_s, const RollupCell& cell)>& fn,
            std::string* error, CellParts parts = CellParts::kAll) const;

  // Calls `fn` for each stored cell of every segment that starts with `prefix` (for a
  // breakdown: "page=") whose bucket starts in [from_s, to_s): segment by segment in key order,
  // each in time order, leaving out expired cells. One iterator; it seeks past the buckets of a
  // segment outside the range instead of reading them.
  bool ScanSegments(Resolution resolution, std::string_view prefix, int64_t from_s, int64_t to_s,
                    const std::function<void(std::string_view segment, int64_t bucket_s,
                                             const RollupCell& cell)>& fn,
                    std::string* error, CellParts parts = CellParts::kAll) const;

  // Compacts every family now, which applies retention (RocksDB also does it on its own as
  // data arrives).
  bool Compact(std::string* error);

  // A consistent copy of the whole store (every family and the meta, as of one point) in `dir`,
  // which must not exist: RocksDB's checkpoint, hard links to the SST files (no copy on the same
  // filesystem) after a flush. For a peer that copies this store (cluster/history_copy.h).
  bool Checkpoint(const std::string& dir, std::string* error);
  // Reads every SST file and checks its blocks' checksums (a copied store, before it is used).
  bool VerifyChecksums(std::string* error);

  const RollupRetention& retention() const { return retention_; }

  // Bytes on disk of every family's SST files.
  uint64_t DiskBytes() const;
  // The same for one resolution's family.
  uint64_t DiskBytes(Resolution resolution) const;

 private:
  RollupStore() = default;
  // The first bucket start at or after `from_s`'s bucket that is not expired: where every scan
  // starts, so that no scan answers from a cell compaction has not deleted yet.
  int64_t FirstLiveBucket(Resolution resolution, int64_t from_s) const;
  rocksdb::ColumnFamilyHandle* Family(Resolution resolution) const {
    return families_[static_cast<size_t>(resolution)];
  }

  RollupRetention retention_;
  std::function<int64_t()> now_s_;
  // Referenced (not owned) by the families' options: declared before db_, so they outlive it.
  std::vector<std::unique_ptr<rocksdb::CompactionFilter>> filters_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> families_;
};

}  // namespace rta::storage
