#include "server/rollup_writer.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <utility>

#include "server/log.h"

namespace rta::server {
namespace {

// Meta keys of the rollup store (its default column family).
constexpr std::string_view kAppliedLsnKey = "applied_lsn";  // u64 LE: records folded so far
constexpr std::string_view kSeedsKey = "hash_seeds";        // 2 x u64: visitor, session
// "value" NUL, the dimension's index as one byte, the value: an admitted dimension value.
constexpr std::string_view kValuePrefix{"value\0", 6};
// "session" NUL, the session hash (u64 LE): a session of the accumulator's table, as of
// applied_lsn (RollupAccumulator::TakeSessionChanges).
constexpr std::string_view kSessionPrefix{"session\0", 8};

std::string SessionKey(uint64_t session_hash) {
  return std::string(kSessionPrefix) + storage::MetaU64(session_hash);
}

uint64_t ReadU64(std::string_view bytes, size_t offset) {
  uint64_t value = 0;
  if (bytes.size() >= offset + 8) std::memcpy(&value, bytes.data() + offset, 8);
  return value;
}

}  // namespace

RollupWriter::RollupWriter(const Options& options, storage::EventLog& log)
    : options_(options), log_(log), accumulator_(options.limits) {}

std::unique_ptr<RollupWriter> RollupWriter::Open(const Options& options, storage::EventLog& log,
                                                 const agg::Clock& clock, std::string* error) {
  std::unique_ptr<RollupWriter> writer(new RollupWriter(options, log));
  const agg::Clock* clock_ptr = &clock;
  writer->store_ = storage::RollupStore::Open(
      options.dir, options.retention, [clock_ptr] { return clock_ptr->NowMs() / 1000; }, error);
  if (writer->store_ == nullptr) return nullptr;
  storage::RollupStore& store = *writer->store_;

  std::string value;
  bool found = false;
  if (!store.GetMeta(std::string(kAppliedLsnKey), &value, &found, error)) return nullptr;
  if (found) writer->folded_lsn_ = ReadU64(value, 0);
  writer->applied_lsn_.store(writer->folded_lsn_, std::memory_order_release);

  // The visitor and session hashes must be the same for the store's whole life (HyperLogLog
  // registers of different seeds do not merge), and unknown to clients (who could otherwise
  // aim ids at one register): drawn once, kept in the store.
  if (!store.GetMeta(std::string(kSeedsKey), &value, &found, error)) return nullptr;
  if (found && value.size() == 16) {
    writer->visitor_seed_ = ReadU64(value, 0);
    writer->session_seed_ = ReadU64(value, 8);
  } else {
    // libstdc++'s random_device reads the kernel's CSPRNG (getrandom / /dev/urandom).
    std::random_device random;
    auto draw = [&random] { return (uint64_t{random()} << 32) | random(); };
    writer->visitor_seed_ = draw();
    writer->session_seed_ = draw();
    if (!store.Write({},
                     {{std::string(kSeedsKey), storage::MetaU64(writer->visitor_seed_) +
                                                   storage::MetaU64(writer->session_seed_)}},
                     true, error)) {
      return nullptr;
    }
  }
  bool bad_value = false;
  if (!store.ScanMeta(
          kValuePrefix,
          [&](std::string_view key, std::string_view) {
            if (key.size() <= kValuePrefix.size()) {
              bad_value = true;
              return;
            }
            const auto dimension = static_cast<unsigned char>(key[kValuePrefix.size()]);
            if (dimension >= storage::kRollupDimensionCount) {
              bad_value = true;
              return;
            }
            writer->accumulator_.Admit(dimension, key.substr(kValuePrefix.size() + 1));
          },
          error)) {
    return nullptr;
  }
  if (bad_value) {
    *error = "the rollup store " + options.dir + " has an admitted value of an unknown dimension";
    return nullptr;
  }
  // After the values: a session's stored values are names, found among the admitted ones.
  if (!writer->LoadSessions(error)) return nullptr;
  return writer;
}

bool RollupWriter::LoadSessions(std::string* error) {
  accumulator_.ForgetSessions();
  std::string bad;
  if (!store_->ScanMeta(
          kSessionPrefix,
          [&](std::string_view key, std::string_view value) {
            if (!bad.empty()) return;
            std::string why;
            if (key.size() != kSessionPrefix.size() + 8) {
              bad = "a session key of " + std::to_string(key.size()) + " bytes";
            } else if (!accumulator_.RestoreSession(ReadU64(key, kSessionPrefix.size()), value,
                                                    &why)) {
              bad = why;
            }
          },
          error)) {
    return false;
  }
  if (!bad.empty()) {
    *error = "the rollup store " + options_.dir + " has a bad session: " + bad;
    return false;
  }
  return true;
}

RollupWriter::~RollupWriter() { Stop(); }

bool RollupWriter::Fold(uint64_t lsn, std::string_view bytes, std::string* error) {
  uint64_t folded = 0;
  const bool ok = reader_.Read(
      lsn, bytes, &record_,
      [&](const analytics::EventData& event, int64_t ingest_ms) {
        accumulator_.Add(storage::RollupEventOf(event, ingest_ms, visitor_seed_, session_seed_));
        ++folded;
      },
      error);
  if (!ok) return false;
  folded_lsn_ = lsn;
  events_folded_.fetch_add(folded, std::memory_order_relaxed);
  return true;
}

bool RollupWriter::WriteIfFull() {
  return (accumulator_.pending_cells() < options_.max_pending_cells &&
          accumulator_.pending_pairs() < options_.max_pending_pairs) ||
         Write();
}

bool RollupWriter::Write() {
  std::vector<storage::RollupWrite> writes = accumulator_.TakeWrites();
  std::vector<storage::RollupStore::MetaWrite> meta;
  meta.push_back({std::string(kAppliedLsnKey), storage::MetaU64(folded_lsn_)});
  for (const auto& [dimension, value] : accumulator_.new_values()) {
    std::string key(kValuePrefix);
    key.push_back(static_cast<char>(dimension));
    key.append(value);
    meta.push_back({std::move(key), ""});
  }
  // The session table in step with applied_lsn: deletions first, so that a session forgotten
  // and begun again is stored.
  storage::RollupAccumulator::SessionChanges sessions = accumulator_.TakeSessionChanges();
  for (const uint64_t hash : sessions.forgotten) meta.push_back({SessionKey(hash), "", true});
  for (auto& [hash, state] : sessions.states) meta.push_back({SessionKey(hash), std::move(state)});
  values_folded_.store(accumulator_.values_folded(), std::memory_order_relaxed);
  sessions_evicted_.store(accumulator_.sessions_evicted(), std::memory_order_relaxed);
  std::string error;
  // Synced: the log before applied_lsn may be deleted once this returns (Durability's floor).
  if (!store_->Write(writes, meta, /*sync=*/true, &error)) {
    write_failures_.fetch_add(1, std::memory_order_relaxed);
    LogWarn("rollup_write_failed", {{"error", error}, {"lsn", std::to_string(folded_lsn_)}});
    // The folded cells are gone with the failed batch: fold those records again from the log
    // (it keeps them, since applied_lsn did not move), from the session table as it was stored
    // with applied_lsn (the one in memory has those records' sessions in it already). The values
    // admitted meanwhile stay in new_values() for the next batch.
    folded_lsn_ = applied_lsn();
    if (std::string load_error; !LoadSessions(&load_error)) {
      LogWarn("rollup_sessions_reload_failed", {{"error", load_error}});
    }
    return false;
  }
  accumulator_.ClearNewValues();
  writes_.fetch_add(1, std::memory_order_relaxed);
  cells_written_.fetch_add(writes.size(), std::memory_order_relaxed);
  applied_lsn_.store(folded_lsn_, std::memory_order_release);
  return true;
}

bool RollupWriter::ReadLog(uint64_t from, uint64_t to,
                           std::chrono::steady_clock::time_point deadline, bool until_stop,
                           std::string* error) {
  log_reads_.fetch_add(1, std::memory_order_relaxed);
  bool failed = false;
  uint64_t records = 0;
  const bool ok = log_.ReadFrom(
      from,
      [&](storage::Lsn lsn, std::string_view bytes) {
        if (lsn > to) return false;
        // Enough for now: what follows stays in the log (the floor is applied_lsn()).
        if (++records % 256 == 0 &&
            ((until_stop && stop_requested_.load(std::memory_order_relaxed)) ||
             std::chrono::steady_clock::now() >= deadline)) {
          return false;
        }
        if (lsn <= folded_lsn_) return true;
        if (lsn != folded_lsn_ + 1) {  // the log has no such record (a torn tail, a skip)
          folded_lsn_ = lsn - 1;
        }
        if (!Fold(lsn, bytes, error)) {
          // A damaged record: skip it rather than stop the history (recovery, which reads the
          // same log, has refused to start on one unless told to skip corrupt records).
          LogWarn("rollup_fold_failed", {{"error", *error}});
          folded_lsn_ = lsn;
        }
        if (!WriteIfFull()) {
          *error = "writing the rollup store failed";
          failed = true;
          return false;
        }
        return true;
      },
      error);
  return ok && !failed;
}

bool RollupWriter::CatchUp(std::string* error) {
  const uint64_t from = folded_lsn_ + 1;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.start_catch_up_ms);
  if (!ReadLog(from, UINT64_MAX, deadline, /*until_stop=*/false, error)) {
    *error = "the history's catch-up from the event log: " + *error;
    return false;
  }
  if ((accumulator_.pending_cells() > 0 || accumulator_.pending_pairs() > 0) && !Write()) {
    *error = "the history's catch-up: writing the rollup store failed";
    return false;
  }
  const uint64_t tail = log_.durable_lsn();
  LogInfo("history_recovered",
          {{"applied_lsn", std::to_string(applied_lsn())},
           {"from_lsn", std::to_string(from)},
           {"events", std::to_string(events_folded_.load())},
           {"lag_records", std::to_string(tail > folded_lsn_ ? tail - folded_lsn_ : 0)}});
  return true;
}

void RollupWriter::Offer(uint64_t lsn, std::string_view record) {
  if (lsn == 0) return;
  std::lock_guard lock(mutex_);
  if (stopping_ || queue_bytes_ + record.size() > options_.max_queue_bytes) {
    overflowed_ = true;  // the writer reads it back from the log
    return;
  }
  queue_bytes_ += record.size();
  queue_.push_back({lsn, std::string(record)});
}

void RollupWriter::Drain() {
  bool overflowed = false;
  {
    std::lock_guard lock(mutex_);
    for (Queued& queued : queue_) held_.push_back(std::move(queued));
    queue_.clear();
    overflowed = std::exchange(overflowed_, false);
  }
  // Appenders take Lsns in order but may queue them out of order.
  std::sort(held_.begin(), held_.end(),
            [](const Queued& a, const Queued& b) { return a.lsn < b.lsn; });
  const uint64_t durable = log_.durable_lsn();
  std::string error;
  size_t used = 0;
  size_t freed = 0;
  for (; used < held_.size(); ++used) {
    const Queued& queued = held_[used];
    if (queued.lsn <= folded_lsn_) {  // read from the log already
      freed += queued.bytes.size();
      continue;
    }
    if (queued.lsn != folded_lsn_ + 1 || queued.lsn > durable) break;
    freed += queued.bytes.size();
    if (!Fold(queued.lsn, queued.bytes, &error)) {
      LogWarn("rollup_fold_failed", {{"error", error}});
      folded_lsn_ = queued.lsn;  // a damaged record: skip it, as ReadLog does
    }
    if (!WriteIfFull()) {  // folded_lsn_ went back: what follows is read from the log
      ++used;
      break;
    }
  }
  held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(used));
  // A durable record that is not here: dropped from a full queue, or still on its way from an
  // appender. Give an appender a second, then read the log.
  if (folded_lsn_ < durable) {
    const auto now = std::chrono::steady_clock::now();
    if (gap_since_ == std::chrono::steady_clock::time_point{} && !overflowed) {
      gap_since_ = now;
    } else if (overflowed || now - gap_since_ > std::chrono::seconds(1)) {
      if (!ReadLog(folded_lsn_ + 1, durable, std::chrono::steady_clock::time_point::max(),
                   /*until_stop=*/true, &error)) {
        LogWarn("rollup_log_read_failed", {{"error", error}});
      }
      gap_since_ = {};
    }
  } else {
    gap_since_ = {};
  }
  std::lock_guard lock(mutex_);
  queue_bytes_ -= std::min(queue_bytes_, freed);
}

void RollupWriter::Run() {
  next_write_ =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.flush_interval_ms);
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      // Drained often (a record waits here until it is durable), written every interval.
      cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping_; });
      stopping = stopping_;
    }
    Drain();
    if (stopping) {  // everything durable now, including what an appender has not queued yet
      const uint64_t durable = log_.durable_lsn();
      std::string error;
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.stop_catch_up_ms);
      if (folded_lsn_ < durable &&
          !ReadLog(folded_lsn_ + 1, durable, deadline, /*until_stop=*/false, &error)) {
        LogWarn("rollup_log_read_failed", {{"error", error}});
      }
    }
    if (stopping || std::chrono::steady_clock::now() >= next_write_) {
      if (accumulator_.pending_cells() > 0 || accumulator_.pending_pairs() > 0 ||
          applied_lsn() != folded_lsn_) {
        Write();
      }
      next_write_ =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.flush_interval_ms);
    }
    if (stopping) return;
  }
}

void RollupWriter::Start() {
  thread_ = std::thread([this] { Run(); });
}

void RollupWriter::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_requested_.store(true, std::memory_order_relaxed);
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

RollupWriterStats RollupWriter::stats() const {
  RollupWriterStats stats;
  stats.events_folded = events_folded_.load(std::memory_order_relaxed);
  stats.writes = writes_.load(std::memory_order_relaxed);
  stats.cells_written = cells_written_.load(std::memory_order_relaxed);
  stats.write_failures = write_failures_.load(std::memory_order_relaxed);
  stats.log_reads = log_reads_.load(std::memory_order_relaxed);
  stats.values_folded = values_folded_.load(std::memory_order_relaxed);
  stats.sessions_evicted = sessions_evicted_.load(std::memory_order_relaxed);
  stats.applied_lsn = applied_lsn();
  return stats;
}

}  // namespace rta::server
