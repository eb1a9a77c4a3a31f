#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rta::server {

// What the server answered for one batch of a producer: kept so that a re-sent batch gets the
// original counts back (PublishAck.duplicate_batch).
struct BatchCounts {
  uint64_t sequence = 0;
  uint32_t accepted = 0;
  uint32_t duplicates = 0;
  uint32_t rejected = 0;
};

// The idempotent-producer table of PublishEvents, in the way Kafka's broker keeps producer
// state (KIP-98): per producer id, the last sequence the server has taken into its event log and
// the counts of its last kRememberedBatches batches. A re-sent batch is recognised by its
// sequence alone, however fast the producer sends and however old its event ids are, in memory
// proportional to the number of producers (not events).
//
// The sequence recorded here is the last one *appended* to the log; after a crash the table is
// rebuilt from the checkpoint and the log, so it holds the last *durable* one, which is what a
// re-sending client must be compared with.
//
// Thread-safety: Begin() locks the producer's entry until the Batch it fills in is destroyed, so
// two streams of one producer (a client that reconnected while its old stream is still being
// processed) take turns; other producers are not held up (64 shards, each with its own mutex,
// held only for the lookup). Serialize()/Restore() need the caller to keep ingest out (the
// aggregator's checkpoint freeze does). Expire() may run at any time.
class ProducerTable {
 public:
  static constexpr size_t kRememberedBatches = 8;
  static constexpr size_t kMaxProducerIdBytes = 128;

  enum class Verdict {
    kNew,        // sequence == last + 1 (or an unknown producer): ingest it, then Commit()
    kDuplicate,  // sequence <= last: already in the log; `original` has the counts if known
    kGap,        // sequence > last + 1: batches are missing; `expected` says which one is next
    kFull,       // a new producer, and the table holds max_producers already
  };

  // A producer's entry, locked while this object lives.
  class Batch {
   public:
    Batch() = default;
    Batch(Batch&&) = default;
    Batch& operator=(Batch&&) = default;
    // Records the batch as the producer's last (call once it is appended to the log).
    void Commit(const BatchCounts& counts, int64_t now_ms);

   private:
    friend class ProducerTable;
    struct ProducerEntry* entry_ = nullptr;
    std::unique_lock<std::mutex> lock_;
  };

  ProducerTable(uint64_t max_producers, int64_t idle_expiry_ms);
  ~ProducerTable();

  // Looks the producer up and locks its entry into `batch` (for kNew and kDuplicate).
  Verdict Begin(std::string_view producer_id, uint64_t sequence, int64_t now_ms, Batch* batch,
                BatchCounts* original, uint64_t* expected);

  // Replays a batch read back from the event log (at start, single-threaded).
  void ApplyLogged(std::string_view producer_id, const BatchCounts& counts, int64_t ingest_ms);

  // Forgets producers idle for longer than the expiry. Returns how many were dropped.
  size_t Expire(int64_t now_ms);

  size_t size() const;

  // A compact binary form of the whole table, for the checkpoint; Restore() replaces the
  // table's contents with it (false with `error` set on a damaged input).
  std::string Serialize() const;
  bool Restore(std::string_view bytes, std::string* error);

 private:
  struct Shard;
  Shard& ShardFor(std::string_view producer_id);

  const uint64_t max_producers_;
  const int64_t idle_expiry_ms_;
  std::unique_ptr<std::array<Shard, 64>> shards_;
  std::atomic<uint64_t> producers_{0};  // entries in all shards
};

}  // namespace rta::server
