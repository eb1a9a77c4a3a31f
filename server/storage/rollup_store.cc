#include "server/storage/rollup_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>

#include "server/aggregator/time_key.h"

namespace rta::storage {
namespace {

// Each resolution's column family, its name in messages and its bucket size, by Resolution.
struct ResolutionInfo {
  const char* family;
  const char* name;
  int64_t seconds;
};
constexpr ResolutionInfo kResolutions[kResolutionCount] = {
    {"rollup_minute", "minute", 60}, {"rollup_hour", "hour", 3'600}, {"rollup_day", "day", 86'400}};
constexpr size_t kBucketBytes = 8;
constexpr size_t kBlockCacheBytes = 256 << 20;

// The segment, a NUL, then the bucket start big-endian with the sign bit flipped, so that byte
// order is time order (negative times included).
std::string CellKey(std::string_view segment, int64_t bucket_s) {
  std::string key;
  key.reserve(segment.size() + 1 + kBucketBytes);
  key.append(segment);
  key.push_back('\0');
  const uint64_t biased = static_cast<uint64_t>(bucket_s) ^ (uint64_t{1} << 63);
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(biased >> shift));
  return key;
}

bool KeyBucket(const rocksdb::Slice& key, int64_t* bucket_s) {
  if (key.size() < kBucketBytes + 1) return false;
  uint64_t biased = 0;
  for (size_t i = key.size() - kBucketBytes; i < key.size(); ++i) {
    biased = (biased << 8) | static_cast<unsigned char>(key[i]);
  }
  *bucket_s = static_cast<int64_t>(biased ^ (uint64_t{1} << 63));
  return true;
}

// Folds a written cell into the stored one (RollupCell::Merge, associative), so a write never
// reads first. A value that does not decode fails the merge, which RocksDB reports as
// corruption on the read or compaction that needed it.
class CellMergeOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    if (existing == nullptr) {
      new_value->assign(value.data(), value.size());
      return true;
    }
    RollupCell stored, added;
    std::string error;
    if (!RollupCell::Decode(std::string_view(existing->data(), existing->size()), &stored,
                            &error) ||
        !RollupCell::Decode(std::string_view(value.data(), value.size()), &added, &error)) {
      return false;
    }
    stored.Merge(added);
    *new_value = stored.Encode();
    return true;
  }
  const char* Name() const override { return "rta.RollupCellMerge"; }
};

// Retention: drops the cells (and pending merges) of buckets that ended more than `retention_s`
// before now. Stateless apart from the clock, so RocksDB may share it between compactions.
class RetentionFilter final : public rocksdb::CompactionFilter {
 public:
  RetentionFilter(int64_t bucket_s, int64_t retention_s, std::function<int64_t()> now_s)
      : bucket_s_(bucket_s), retention_s_(retention_s), now_s_(std::move(now_s)) {}

  bool Filter(int /*level*/, const rocksdb::Slice& key, const rocksdb::Slice& /*value*/,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    return Expired(key);
  }
  bool FilterMergeOperand(int /*level*/, const rocksdb::Slice& key,
                          const rocksdb::Slice& /*operand*/) const override {
    return Expired(key);
  }
  const char* Name() const override { return "rta.RollupRetention"; }

 private:
  bool Expired(const rocksdb::Slice& key) const {
    int64_t bucket = 0;
    return KeyBucket(key, &bucket) && bucket + bucket_s_ <= now_s_() - retention_s_;
  }

  const int64_t bucket_s_;
  const int64_t retention_s_;
  const std::function<int64_t()> now_s_;
};

// Decodes all of a cell, or only its counters into a cell without sketches.
bool DecodeCell(std::string_view bytes, CellParts parts, RollupCell* cell, std::string* error) {
  if (parts == CellParts::kAll) return RollupCell::Decode(bytes, cell, error);
  *cell = RollupCell();
  return RollupCell::DecodeCounters(bytes, &cell->counters, error);
}

// Decodes the cell at `segment`/`bucket`; a cell that does not decode is an error naming it.
bool DecodeAt(Resolution resolution, std::string_view segment, int64_t bucket,
              const rocksdb::Slice& value, CellParts parts, RollupCell* cell, std::string* error) {
  if (DecodeCell(std::string_view(value.data(), value.size()), parts, cell, error)) return true;
  error->append(" (").append(ResolutionName(resolution)).append(" cell of '");
  error->append(segment).append("' at ").append(std::to_string(bucket)).append(")");
  return false;
}

}  // namespace

int64_t ResolutionSeconds(Resolution resolution) {
  return kResolutions[static_cast<size_t>(resolution)].seconds;
}

const char* ResolutionName(Resolution resolution) {
  return kResolutions[static_cast<size_t>(resolution)].name;
}

int64_t BucketStart(Resolution resolution, int64_t time_s) {
  const int64_t size = ResolutionSeconds(resolution);
  return agg::detail::FloorDiv(time_s, size) * size;
}

int64_t RollupRetention::For(Resolution resolution) const {
  switch (resolution) {
    case Resolution::kMinute:
      return minute_s;
    case Resolution::kHour:
      return hour_s;
    case Resolution::kDay:
      return day_s;
  }
  return minute_s;
}

std::unique_ptr<RollupStore> RollupStore::Open(const std::string& dir,
                                               const RollupRetention& retention,
                                               std::function<int64_t()> now_s, std::string* error) {
  std::unique_ptr<RollupStore> store(new RollupStore());
  store->retention_ = retention;
  store->now_s_ = now_s;
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.max_background_jobs = 2;
  options.keep_log_file_num = 5;
  options.max_manifest_file_size = 64 << 20;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
  const auto merge = std::make_shared<CellMergeOperator>();
  // One block cache for every family: range queries read the same recent cells again and
  // again (a dashboard's 30-day view), and a cached block is kept uncompressed.
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  // 64 KiB blocks, not the default 4 KiB: a dense cell alone is 4 or 16 KiB, so small blocks
  // hold one or two cells each and ZSTD starts its tables afresh for every one. history_bench
  // (one hour): 410 MB per 30 days with 4 KiB blocks, 387 MB with 64 KiB, and a 30-day
  // breakdown reads fewer blocks (p50 7.8 -> 6.4 ms). ZSTD level 9 gained 2% more; not taken.
  table.block_size = 64 << 10;
  const std::shared_ptr<rocksdb::TableFactory> tables(rocksdb::NewBlockBasedTableFactory(table));
  for (size_t i = 0; i < kResolutionCount; ++i) {
    const auto resolution = static_cast<Resolution>(i);
    store->filters_.push_back(std::make_unique<RetentionFilter>(ResolutionSeconds(resolution),
                                                                retention.For(resolution), now_s));
    rocksdb::ColumnFamilyOptions family;
    family.merge_operator = merge;
    family.compaction_filter = store->filters_.back().get();
    family.write_buffer_size = 16 << 20;
    // ZSTD, not the default Snappy: a cell is mostly HyperLogLog registers (small integers) and
    // quantile bins (8-byte counts, mostly small), which an entropy coder shrinks and Snappy
    // barely does. history_bench: 67.4 MB per day with Snappy, 46.3 MB with ZSTD (same cells).
    family.compression = rocksdb::kZSTD;
    family.table_factory = tables;
    families.emplace_back(kResolutions[i].family, family);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  const rocksdb::Status status = rocksdb::DB::Open(options, dir, families, &handles, &db);
  if (!status.ok()) {
    *error = "cannot open the rollup store " + dir + ": " + status.ToString();
    return nullptr;
  }
  store->db_.reset(db);
  store->default_ = handles[0];
  store->families_.assign(handles.begin() + 1, handles.end());
  return store;
}

RollupStore::~RollupStore() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* handle : families_) db_->DestroyColumnFamilyHandle(handle);
  db_->DestroyColumnFamilyHandle(default_);
  db_->Close();
  db_.reset();  // before the filters it uses (members are destroyed after this body)
}

bool RollupStore::Write(const std::vector<RollupWrite>& writes, const std::vector<MetaWrite>& meta,
                        bool sync, std::string* error) {
  rocksdb::WriteBatch batch;
  for (const MetaWrite& entry : meta) {
    const rocksdb::Status status = entry.erase ? batch.Delete(default_, entry.key)
                                               : batch.Put(default_, entry.key, entry.value);
    if (!status.ok()) {
      *error = "rollup meta write: " + status.ToString();
      return false;
    }
  }
  for (const RollupWrite& write : writes) {
    if (write.segment.find('\0') != std::string::npos) {
      *error = "rollup segment contains a NUL byte";
      return false;
    }
    const rocksdb::Status status = batch.Merge(
        Family(write.resolution),
        CellKey(write.segment, BucketStart(write.resolution, write.time_s)), write.cell.Encode());
    if (!status.ok()) {
      *error = "rollup write: " + status.ToString();
      return false;
    }
  }
  rocksdb::WriteOptions options;
  options.sync = sync;
  const rocksdb::Status status = db_->Write(options, &batch);
  if (!status.ok()) {
    *error = "rollup write failed: " + status.ToString();
    return false;
  }
  return true;
}

int64_t RollupStore::FirstLiveBucket(Resolution resolution, int64_t from_s) const {
  // A bucket is expired once it ended `retention` before now: start + size <= now - retention.
  const int64_t size = ResolutionSeconds(resolution);
  const int64_t first_kept = now_s_() - retention_.For(resolution) - size + 1;
  const int64_t first = BucketStart(resolution, std::max(from_s, first_kept));
  return first < first_kept ? first + size : first;
}

bool RollupStore::Scan(Resolution resolution, std::string_view segment, int64_t from_s,
                       int64_t to_s,
                       const std::function<void(int64_t bucket_s, const RollupCell& cell)>& fn,
                       std::string* error, CellParts parts) const {
  const int64_t from = FirstLiveBucket(resolution, from_s);
  std::string prefix(segment);
  prefix.push_back('\0');
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), Family(resolution)));
  RollupCell cell;
  for (it->Seek(CellKey(segment, from)); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (!key.starts_with(prefix) || key.size() != prefix.size() + kBucketBytes) break;
    int64_t bucket = 0;
    KeyBucket(key, &bucket);
    if (bucket >= to_s) break;
    if (!DecodeAt(resolution, segment, bucket, it->value(), parts, &cell, error)) return false;
    fn(bucket, cell);
  }
  if (!it->status().ok()) {
    *error = "rollup scan: " + it->status().ToString();
    return false;
  }
  return true;
}

bool RollupStore::GetMeta(const std::string& key, std::string* value, bool* found,
                          std::string* error) const {
  const rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), default_, key, value);
  *found = status.ok();
  if (status.ok() || status.IsNotFound()) return true;
  *error = "rollup meta read: " + status.ToString();
  return false;
}

bool RollupStore::ScanMeta(std::string_view prefix,
                           const std::function<void(std::string_view, std::string_view)>& fn,
                           std::string* error) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), default_));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (!key.starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) break;
    fn(std::string_view(key.data(), key.size()),
       std::string_view(it->value().data(), it->value().size()));
  }
  if (!it->status().ok()) {
    *error = "rollup meta scan: " + it->status().ToString();
    return false;
  }
  return true;
}

bool RollupStore::ScanSegments(
    Resolution resolution, std::string_view prefix, int64_t from_s, int64_t to_s,
    const std::function<void(std::string_view, int64_t, const RollupCell&)>& fn, std::string* error,
    CellParts parts) const {
  const int64_t from = FirstLiveBucket(resolution, from_s);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), Family(resolution)));
  RollupCell cell;
  std::string seek;
  it->Seek(rocksdb::Slice(prefix.data(), prefix.size()));
  while (it->Valid()) {
    const rocksdb::Slice key = it->key();
    if (!key.starts_with(rocksdb::Slice(prefix.data(), prefix.size())) ||
        key.size() < kBucketBytes + 1) {
      break;
    }
    const std::string_view segment(key.data(), key.size() - kBucketBytes - 1);
    int64_t bucket = 0;
    KeyBucket(key, &bucket);
    if (bucket < from) {  // before the range: jump to its start in this segment
      seek = CellKey(segment, from);
      it->Seek(seek);
      continue;
    }
    if (bucket >= to_s) {  // after it: jump to the next segment (NUL < 0x01 < any other byte)
      seek.assign(segment);
      seek.push_back('\x01');
      it->Seek(seek);
      continue;
    }
    if (!DecodeAt(resolution, segment, bucket, it->value(), parts, &cell, error)) return false;
    fn(segment, bucket, cell);
    it->Next();
  }
  if (!it->status().ok()) {
    *error = "rollup scan: " + it->status().ToString();
    return false;
  }
  return true;
}

bool RollupStore::Compact(std::string* error) {
  rocksdb::CompactRangeOptions options;
  // Rewrite the last level too: that is where old cells sit, and where retention must reach.
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (rocksdb::ColumnFamilyHandle* family : families_) {
    rocksdb::Status status = db_->Flush(rocksdb::FlushOptions(), family);
    if (status.ok()) status = db_->CompactRange(options, family, nullptr, nullptr);
    if (!status.ok()) {
      *error = "rollup compaction: " + status.ToString();
      return false;
    }
  }
  return true;
}

bool RollupStore::Checkpoint(const std::string& dir, std::string* error) {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status status = rocksdb::Checkpoint::Create(db_.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: flush the memtables first, so the copy is SST files and a short
  // manifest, with no write-ahead log to replay.
  if (status.ok()) status = checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0);
  if (!status.ok()) {
    *error = "rollup checkpoint in " + dir + ": " + status.ToString();
    return false;
  }
  return true;
}

bool RollupStore::VerifyChecksums(std::string* error) {
  const rocksdb::Status status = db_->VerifyChecksum();
  if (!status.ok()) {
    *error = "rollup store checksums: " + status.ToString();
    return false;
  }
  return true;
}

uint64_t RollupStore::DiskBytes(Resolution resolution) const {
  uint64_t bytes = 0;
  db_->GetIntProperty(Family(resolution), "rocksdb.total-sst-files-size", &bytes);
  return bytes;
}

uint64_t RollupStore::DiskBytes() const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* family : families_) {
    uint64_t bytes = 0;
    if (db_->GetIntProperty(family, "rocksdb.total-sst-files-size", &bytes)) total += bytes;
  }
  return total;
}

}  // namespace rta::storage
