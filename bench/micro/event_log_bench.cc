// Durable appends, closed loop: each appender thread appends one record and waits until it is
// durable before the next (as an ingest stream waits for its acknowledgement). Compares the
// segment log (server/storage) in its three fsync modes against RocksDB's own WAL (a Put per
// record with WriteOptions.sync = true; RocksDB groups concurrent writers itself).
//
//   build/release/bench/micro/event_log_bench            (files under $RTA_BENCH_DIR or /tmp)
//
// Columns: items_per_second = records/s over all threads, bytes_per_second = payload bytes/s,
// disk_per_payload = bytes the process sent to the block layer (/proc/self/io write_bytes: whole
// pages, so a sync of a partly written page counts 4 KiB) per payload byte.

#include <benchmark/benchmark.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "server/storage/segment_log.h"

namespace rta::bench {
namespace {

using storage::EventLog;
using storage::FsyncMode;
using storage::Lsn;

// /proc/self/io write_bytes: bytes this process caused to be sent to the storage layer.
uint64_t ProcessWriteBytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "write_bytes:") return value;
  }
  return 0;
}

std::string MakeTempDir() {
  const char* base = std::getenv("RTA_BENCH_DIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/rta_event_log_bench_XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

// A payload of n bytes that does not compress (like a serialized batch of varied events).
std::string Payload(size_t n, int thread) {
  std::mt19937_64 rng(static_cast<uint64_t>(thread) * 7919 + n);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// State shared by the threads of one run; Setup and Teardown run once per run, single-threaded.
struct Run {
  std::string dir;
  std::unique_ptr<EventLog> log;
  std::unique_ptr<rocksdb::DB> db;
  uint64_t write_bytes_before = 0;
  std::atomic<int> finished{0};
};
Run* g_run = nullptr;

// Called by each thread after its loop: the last one out reports the disk bytes.
void ReportDisk(benchmark::State& state, size_t record_bytes) {
  const int done = g_run->finished.fetch_add(1) + 1;
  if (state.thread_index() != 0) return;
  while (g_run->finished.load() < state.threads()) std::this_thread::yield();
  (void)done;
  const double payload = static_cast<double>(state.iterations()) * state.threads() *
                         static_cast<double>(record_bytes);
  const double disk = static_cast<double>(ProcessWriteBytes() - g_run->write_bytes_before);
  state.counters["disk_per_payload"] = payload > 0 ? disk / payload : 0;
}

void SetupSegmentLog(const benchmark::State& state) {
  g_run = new Run;
  g_run->dir = MakeTempDir();
  storage::LogOptions options;
  options.dir = g_run->dir;
  options.fsync = static_cast<FsyncMode>(state.range(0));
  options.interval_ms = 10;
  storage::OpenReport report;
  std::string error;
  g_run->log = storage::OpenSegmentLog(options, &report, &error);
  if (!g_run->log) std::abort();
  g_run->write_bytes_before = ProcessWriteBytes();
}

void SetupRocksDb(const benchmark::State&) {
  g_run = new Run;
  g_run->dir = MakeTempDir();
  rocksdb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = 512 << 20;  // no memtable flush during a run: the WAL alone
  options.disable_auto_compactions = true;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::Open(options, g_run->dir, &db).ok()) std::abort();
  g_run->db.reset(db);
  g_run->write_bytes_before = ProcessWriteBytes();
}

void TearDown(const benchmark::State&) {
  g_run->log.reset();
  if (g_run->db) {
    (void)g_run->db->Close();
    g_run->db.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(g_run->dir, ec);
  delete g_run;
  g_run = nullptr;
}

// Args: fsync mode, record bytes.
void BM_SegmentLog(benchmark::State& state) {
  const auto record_bytes = static_cast<size_t>(state.range(1));
  const std::string payload = Payload(record_bytes, state.thread_index());
  EventLog& log = *g_run->log;
  std::mutex mu;
  std::condition_variable cv;
  Lsn durable = 0;
  for (auto _ : state) {
    Lsn lsn = 0;
    std::string why;
    if (!log.Append(payload, &lsn, &why)) {
      state.SkipWithError(why.c_str());
      break;
    }
    log.WhenDurable(lsn, [&, lsn](bool) {
      std::lock_guard lock(mu);
      durable = lsn;
      cv.notify_one();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return durable == lsn; });
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(record_bytes));
  ReportDisk(state, record_bytes);
}

// Args: record bytes.
void BM_RocksDbWal(benchmark::State& state) {
  const auto record_bytes = static_cast<size_t>(state.range(0));
  const std::string payload = Payload(record_bytes, state.thread_index());
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  uint64_t seq = 0;
  char key[16];
  for (auto _ : state) {
    std::snprintf(key, sizeof(key), "%02d%013llu", state.thread_index(),
                  static_cast<unsigned long long>(seq++));
    rocksdb::WriteBatch batch;
    batch.Put(rocksdb::Slice(key, 15), payload);
    rocksdb::Status s = g_run->db->Write(write_options, &batch);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(record_bytes));
  ReportDisk(state, record_bytes);
}

void SegmentArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"fsync", "bytes"});
  for (int mode : {0, 1, 2}) {  // kAlways, kInterval, kNever
    for (int bytes : {1024, 12 * 1024}) b->Args({mode, bytes});
  }
  b->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
  b->Setup(SetupSegmentLog)->Teardown(TearDown);
}

void RocksArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bytes"});
  for (int bytes : {1024, 12 * 1024}) b->Args({bytes});
  b->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
  b->Setup(SetupRocksDb)->Teardown(TearDown);
}

BENCHMARK(BM_SegmentLog)->Apply(SegmentArgs);
BENCHMARK(BM_RocksDbWal)->Apply(RocksArgs);

}  // namespace
}  // namespace rta::bench

BENCHMARK_MAIN();
