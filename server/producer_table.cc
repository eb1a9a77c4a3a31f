#include "server/producer_table.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <vector>

namespace rta::server {

struct ProducerEntry {
  std::mutex mutex;  // held by a Batch while its events are ingested and appended
  // Below: guarded by `mutex`.
  uint64_t last_sequence = 0;
  int64_t last_seen_ms = 0;
  std::array<BatchCounts, ProducerTable::kRememberedBatches> recent{};  // by sequence % size
  // Guarded by the shard's mutex: Begin() calls between the lookup and the unlock of the entry,
  // so that Expire() never frees an entry someone is about to lock.
  int users = 0;
};

struct ProducerTable::Shard {
  std::mutex mutex;
  std::unordered_map<std::string, std::unique_ptr<ProducerEntry>> entries;
};

void ProducerTable::Batch::Commit(const BatchCounts& counts, int64_t now_ms) {
  entry_->last_sequence = counts.sequence;
  entry_->last_seen_ms = now_ms;
  entry_->recent[counts.sequence % kRememberedBatches] = counts;
}

ProducerTable::ProducerTable(uint64_t max_producers, int64_t idle_expiry_ms)
    : max_producers_(max_producers),
      idle_expiry_ms_(idle_expiry_ms),
      shards_(std::make_unique<std::array<Shard, 64>>()) {}

ProducerTable::~ProducerTable() = default;

ProducerTable::Shard& ProducerTable::ShardFor(std::string_view producer_id) {
  return (*shards_)[std::hash<std::string_view>{}(producer_id) % shards_->size()];
}

ProducerTable::Verdict ProducerTable::Begin(std::string_view producer_id, uint64_t sequence,
                                            int64_t now_ms, Batch* batch, BatchCounts* original,
                                            uint64_t* expected) {
  Shard& shard = ShardFor(producer_id);
  ProducerEntry* entry = nullptr;
  {
    std::lock_guard lock(shard.mutex);
    auto it = shard.entries.find(std::string(producer_id));
    if (it == shard.entries.end()) {
      if (producers_.load(std::memory_order_relaxed) >= max_producers_) return Verdict::kFull;
      producers_.fetch_add(1, std::memory_order_relaxed);
      it = shard.entries.emplace(std::string(producer_id), std::make_unique<ProducerEntry>()).first;
    }
    entry = it->second.get();
    ++entry->users;
  }
  std::unique_lock entry_lock(entry->mutex);
  {
    std::lock_guard lock(shard.mutex);
    --entry->users;
  }
  entry->last_seen_ms = std::max(entry->last_seen_ms, now_ms);
  // An unknown producer (new, or expired) may start at any sequence: a client that outlived
  // the server's memory of it carries on where it is.
  if (entry->last_sequence != 0) {
    if (sequence <= entry->last_sequence) {
      const BatchCounts& kept = entry->recent[sequence % kRememberedBatches];
      *original = kept.sequence == sequence ? kept : BatchCounts{sequence, 0, 0, 0};
      batch->entry_ = entry;
      batch->lock_ = std::move(entry_lock);
      return Verdict::kDuplicate;
    }
    if (sequence != entry->last_sequence + 1) {
      *expected = entry->last_sequence + 1;
      return Verdict::kGap;
    }
  }
  batch->entry_ = entry;
  batch->lock_ = std::move(entry_lock);
  return Verdict::kNew;
}

void ProducerTable::ApplyLogged(std::string_view producer_id, const BatchCounts& counts,
                                int64_t ingest_ms) {
  Shard& shard = ShardFor(producer_id);
  std::lock_guard lock(shard.mutex);
  auto& slot = shard.entries[std::string(producer_id)];
  if (!slot) {
    slot = std::make_unique<ProducerEntry>();
    producers_.fetch_add(1, std::memory_order_relaxed);
  }
  ProducerEntry& entry = *slot;
  if (counts.sequence > entry.last_sequence) entry.last_sequence = counts.sequence;
  entry.last_seen_ms = std::max(entry.last_seen_ms, ingest_ms);
  entry.recent[counts.sequence % kRememberedBatches] = counts;
}

size_t ProducerTable::Expire(int64_t now_ms) {
  size_t dropped = 0;
  for (Shard& shard : *shards_) {
    std::lock_guard lock(shard.mutex);
    for (auto it = shard.entries.begin(); it != shard.entries.end();) {
      ProducerEntry& entry = *it->second;
      std::unique_lock entry_lock(entry.mutex, std::try_to_lock);
      if (entry.users == 0 && entry_lock.owns_lock() &&
          now_ms - entry.last_seen_ms > idle_expiry_ms_) {
        entry_lock.unlock();
        it = shard.entries.erase(it);
        producers_.fetch_sub(1, std::memory_order_relaxed);
        ++dropped;
      } else {
        ++it;
      }
    }
  }
  return dropped;
}

size_t ProducerTable::size() const { return producers_.load(std::memory_order_relaxed); }

namespace {

void PutU64(std::string* out, uint64_t value) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (8 * i));
  out->append(bytes, 8);
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

constexpr uint64_t kFormatVersion = 1;

}  // namespace

std::string ProducerTable::Serialize() const {
  // version, count, then per producer: id length, id, last sequence, last seen, and the
  // remembered batches (sequence and three counts each).
  std::string out;
  std::string body;
  uint64_t count = 0;
  for (Shard& shard : *shards_) {
    std::lock_guard lock(shard.mutex);
    for (const auto& [id, entry] : shard.entries) {
      ++count;
      PutU64(&out, id.size());
      out.append(id);
      PutU64(&out, entry->last_sequence);
      PutU64(&out, static_cast<uint64_t>(entry->last_seen_ms));
      for (const BatchCounts& counts : entry->recent) {
        PutU64(&out, counts.sequence);
        PutU64(&out, counts.accepted);
        PutU64(&out, counts.duplicates);
        PutU64(&out, counts.rejected);
      }
    }
  }
  PutU64(&body, kFormatVersion);
  PutU64(&body, count);
  return body + out;
}

bool ProducerTable::Restore(std::string_view bytes, std::string* error) {
  uint64_t version = 0, count = 0;
  if (!GetU64(&bytes, &version) || version != kFormatVersion || !GetU64(&bytes, &count)) {
    *error = "producer table: unknown format version or truncated header";
    return false;
  }
  for (Shard& shard : *shards_) {
    std::lock_guard lock(shard.mutex);
    shard.entries.clear();
  }
  producers_.store(0, std::memory_order_relaxed);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t length = 0, sequence = 0, seen = 0;
    if (!GetU64(&bytes, &length) || length > kMaxProducerIdBytes || bytes.size() < length) {
      *error = "producer table: entry " + std::to_string(i) + " is damaged";
      return false;
    }
    const std::string id(bytes.substr(0, length));
    bytes.remove_prefix(length);
    auto entry = std::make_unique<ProducerEntry>();
    if (!GetU64(&bytes, &sequence) || !GetU64(&bytes, &seen)) {
      *error = "producer table: entry " + std::to_string(i) + " is truncated";
      return false;
    }
    entry->last_sequence = sequence;
    entry->last_seen_ms = static_cast<int64_t>(seen);
    for (BatchCounts& counts : entry->recent) {
      uint64_t values[4];
      for (uint64_t& value : values) {
        if (!GetU64(&bytes, &value)) {
          *error = "producer table: entry " + std::to_string(i) + " is truncated";
          return false;
        }
      }
      counts = {values[0], static_cast<uint32_t>(values[1]), static_cast<uint32_t>(values[2]),
                static_cast<uint32_t>(values[3])};
    }
    Shard& shard = ShardFor(id);
    std::lock_guard lock(shard.mutex);
    if (!shard.entries.insert_or_assign(id, std::move(entry)).second) continue;
    producers_.fetch_add(1, std::memory_order_relaxed);
  }
  if (!bytes.empty()) {
    *error = "producer table: " + std::to_string(bytes.size()) + " bytes left over";
    return false;
  }
  return true;
}

}  // namespace rta::server
