// The history's costs (issue 13), in process, on the real rollup code and a real RocksDB:
//
//  1. Folding: `--hours` of the traffic generator's web-shop traffic at `--rate` events/s are
//     converted (RollupEventOf) and folded (RollupAccumulator) exactly as the server's rollup
//     writer does, and written in the writer's batches; events/s of that is the writer's
//     throughput on one core.
//  2. Disk: the store compacted, bytes per resolution, and per day of traffic: the minute and
//     hour families scale with time (x 24 / hours); the day family holds one cell per segment
//     per day, measured as it is after `--hours` (a full day's HyperLogLogs are denser, so its
//     upper bound, every day cell dense, is printed beside it). Then the floor under the
//     visitor registers, each cell's at the entropy of its own histogram: what the precisions
//     (`--segment-precision`, `--minute-precision`: the server's flags) need, in any format that
//     stores each cell on its own.
//  3. Queries: the generated day's hour and day cells copied to `--days` days (each day the
//     same traffic), then `--queries` range queries over the last 30 days through
//     AnswerRangeQuery (the QueryMetrics handler's work, without gRPC): totals, one filter, a
//     breakdown by page, one filter with a breakdown by page, two filters. p50 and p99 latency.
//  4. Copying (issue 16: a new cluster node copies a peer's store, cluster/history_copy.h): the
//     store as step 3 left it (`--days` days of hour and day cells) served by a HistoryExporter
//     and copied by CopyPeerHistory through a real nats-server on loopback (core NATS only),
//     against the same checkpoint copied by the filesystem (std::filesystem::copy) in the same
//     run: the floor of any copy of those bytes on this machine.
//
//   build/release/bench/micro/history_bench --hours 24 --rate 1000     (the README's figures)
//   build/release/bench/micro/history_bench --smoke                    (CI: seconds)

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "event_reporter/traffic_generator.h"
#include "server/cluster/history_copy.h"
#include "server/history_query.h"
#include "server/rollup_writer.h"
#include "server/storage/rollup_accumulator.h"
#include "server/storage/rollup_store.h"
#include "tests/support/nats_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;
using rta::storage::Resolution;

constexpr int64_t kDayS = 86'400;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(q * static_cast<double>(values.size() - 1))];
}

// Step 4: the store copied to a "new node" over NATS, against a filesystem copy. False on error.
bool MeasureCopy(rta::storage::RollupStore* store, const std::string& dir) {
  // A standalone JetStream server on loopback, as the cluster tests start one
  // ($RTA_NATS_SERVER or Debian's nats-server); killed when this returns.
  const rta::testing::NatsCluster nats(1);
  if (!nats.ok()) {
    std::fprintf(stderr, "history_bench: nats-server did not start: %s\n", nats.error().c_str());
    return false;
  }
  std::string error;
  const auto session = rta::cluster::NatsSession::Connect(nats.urls(), 5000, &error);
  if (session == nullptr) {
    std::fprintf(stderr, "history_bench: %s\n", error.c_str());
    return false;
  }
  rta::cluster::HistoryExporter::Source source;
  source.offer = [] { return rta::cluster::HistoryOffer{"peer", 1, 100}; };
  source.checkpoint = [store](const std::string& into, std::string* why) {
    return store->Checkpoint(into, why);
  };
  auto exporter =
      rta::cluster::HistoryExporter::Start(session.get(), "peer", dir, std::move(source), &error);
  if (exporter == nullptr) {
    std::fprintf(stderr, "history_bench: %s\n", error.c_str());
    return false;
  }
  // The reference: the same kind of checkpoint, copied by the filesystem.
  const std::string reference = dir + ".reference", reference_copy = dir + ".reference-copy";
  auto start = Clock::now();
  if (!store->Checkpoint(reference, &error)) {
    std::fprintf(stderr, "history_bench: %s\n", error.c_str());
    return false;
  }
  const double checkpoint_ms = Seconds(Clock::now() - start) * 1000;
  start = Clock::now();
  std::filesystem::copy(reference, reference_copy, std::filesystem::copy_options::recursive);
  const double file_copy_ms = Seconds(Clock::now() - start) * 1000;
  std::filesystem::remove_all(reference);
  std::filesystem::remove_all(reference_copy);

  const std::string into = dir + ".copy";
  rta::cluster::HistoryCopyReport report;
  if (!rta::cluster::CopyPeerHistory(session.get(), "new", 50, into, std::chrono::milliseconds(300),
                                     &report, &error) ||
      report.peer.empty()) {
    std::fprintf(stderr, "history_bench: copy: %s\n", error.c_str());
    return false;
  }
  start = Clock::now();
  auto copied = rta::storage::RollupStore::Open(
      into, store->retention(), [] { return int64_t{0}; }, &error);
  const bool verified = copied != nullptr && copied->VerifyChecksums(&error);
  const double verify_ms = Seconds(Clock::now() - start) * 1000;
  copied.reset();
  std::filesystem::remove_all(into);
  if (!verified) {
    std::fprintf(stderr, "history_bench: the copy: %s\n", error.c_str());
    return false;
  }
  const double copy_ms = std::max(1.0, static_cast<double>(report.ms));
  const double mb = static_cast<double>(report.bytes) / 1e6;
  std::printf(
      "copy to a new cluster node (HistoryExporter -> CopyPeerHistory over a loopback "
      "nats-server, %zu KiB reads):\n"
      "  %.1f MB in %llu files: %.0f ms (%.0f MB/s; checkpoint included, offers' 300 ms wait "
      "not), then open + checksums %.0f ms\n"
      "  reference, same run: checkpoint %.0f ms + filesystem copy %.0f ms (%.0f MB/s): "
      "NATS copy / filesystem = %.1f\n",
      rta::cluster::kHistoryChunkBytes / 1024, mb, static_cast<unsigned long long>(report.files),
      copy_ms, mb / (copy_ms / 1000), verify_ms, checkpoint_ms, file_copy_ms,
      mb / (file_copy_ms / 1000), copy_ms / (checkpoint_ms + file_copy_ms));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  double hours = 2, rate = 1000;
  int days = 30, queries = 1000;
  int segment_precision = rta::storage::VisitorSketch::kSegmentPrecision;
  int minute_precision = rta::storage::VisitorSketch::kTotalsPrecision;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atof(argv[++i]) : 0.0; };
    if (arg == "--hours")
      hours = next();
    else if (arg == "--rate")
      rate = next();
    else if (arg == "--days")
      days = static_cast<int>(next());
    else if (arg == "--queries")
      queries = static_cast<int>(next());
    else if (arg == "--segment-precision")  // the server's --history-segment-precision
      segment_precision = static_cast<int>(next());
    else if (arg == "--minute-precision")  // the server's --history-minute-precision
      minute_precision = static_cast<int>(next());
    else if (arg == "--smoke") {
      hours = 0.05;
      rate = 200;
      days = 3;
      queries = 20;
    } else {
      std::fprintf(stderr,
                   "usage: history_bench [--hours H] [--rate N] [--days D] "
                   "[--queries Q] [--segment-precision 10..14] [--minute-precision 10..14] "
                   "[--smoke]\n");
      return 2;
    }
  }
  if (hours <= 0 || hours > 24 || rate <= 0 || days < 1 || queries < 1 || segment_precision < 10 ||
      segment_precision > 14 || minute_precision < 10 || minute_precision > 14) {
    std::fprintf(stderr,
                 "history_bench: --hours 0..24, --rate, --days, --queries > 0, "
                 "--segment-precision and --minute-precision 10..14\n");
    return 2;
  }
  const char* base = std::getenv("RTA_BENCH_DIR");
  const std::string dir = std::string(base != nullptr ? base : "/tmp") + "/rta_history_bench_" +
                          std::to_string(::getpid());
  std::filesystem::remove_all(dir);

  // "Now" is the end of the last of `days` days; the traffic is the first hours of that day.
  const int64_t now_s = 1'800'028'800 / kDayS * kDayS + kDayS;  // a fixed UTC midnight
  const int64_t day_start_s = now_s - kDayS;
  rta::storage::RollupRetention retention;
  std::string error;
  auto store = rta::storage::RollupStore::Open(
      dir, retention, [&] { return now_s; }, &error);
  if (store == nullptr) {
    std::fprintf(stderr, "history_bench: %s\n", error.c_str());
    return 1;
  }

  // 1. Folding.
  rta::reporter::GeneratorOptions options;
  options.seed = 42;
  options.events_per_second = rate;
  options.start_ms = day_start_s * 1000;
  rta::reporter::TrafficGenerator generator(options);
  rta::storage::RollupAccumulator::Limits limits;
  limits.segment_visitor_precision = segment_precision;
  limits.minute_visitor_precision = minute_precision;
  rta::storage::RollupAccumulator accumulator(limits);
  analytics::EventData event;
  const int64_t end_ms = options.start_ms + static_cast<int64_t>(hours * 3'600'000);
  uint64_t events = 0, batches = 0;
  Clock::duration generating{}, folding{}, writing{};
  for (;;) {
    auto t0 = Clock::now();
    generator.Next(&event);
    auto t1 = Clock::now();
    generating += t1 - t0;
    if (event.timestamp_ms() >= end_ms) break;
    accumulator.Add(rta::storage::RollupEventOf(event, event.timestamp_ms(), 1, 2));
    ++events;
    auto t2 = Clock::now();
    folding += t2 - t1;
    // The server's writer's limits (RollupWriter::Options).
    if (accumulator.pending_cells() >= 4096 || accumulator.pending_pairs() >= 65'536) {
      if (!store->Write(accumulator.TakeWrites(), false, &error)) break;
      ++batches;
      writing += Clock::now() - t2;
    }
  }
  auto t3 = Clock::now();
  if (error.empty() && !store->Write(accumulator.TakeWrites(), true, &error)) {
    std::fprintf(stderr, "history_bench: %s\n", error.c_str());
    return 1;
  }
  writing += Clock::now() - t3;
  std::printf(
      "folded %llu events (%.2f h at %.0f/s) in %.1f s: %.0f events/s folding, "
      "%.0f events/s with the writes (%llu batches); generating took %.1f s more\n",
      static_cast<unsigned long long>(events), hours, rate, Seconds(folding + writing),
      static_cast<double>(events) / Seconds(folding),
      static_cast<double>(events) / Seconds(folding + writing),
      static_cast<unsigned long long>(batches), Seconds(generating));

  // 2. Disk.
  if (!store->Compact(&error)) {
    std::fprintf(stderr, "history_bench: %s\n", error.c_str());
    return 1;
  }
  const double scale = 24.0 / hours;
  const uint64_t minute = store->DiskBytes(Resolution::kMinute);
  const uint64_t hour = store->DiskBytes(Resolution::kHour);
  const uint64_t day = store->DiskBytes(Resolution::kDay);
  size_t day_cells = 0, pair_cells = 0;  // pair cells keep counters only (no HyperLogLog)
  store->ScanSegments(
      Resolution::kDay, "", 0, now_s,
      [&](std::string_view segment, int64_t, const auto&) {
        ++(segment.rfind('\x02', 0) == 0 ? pair_cells : day_cells);
      },
      &error, rta::storage::CellParts::kCounters);
  const double per_day = static_cast<double>(minute + hour) * scale + static_cast<double>(day);
  // Dense registers, uncompressed: the whole traffic's cell at precision 14, every segment's at
  // --segment-precision (storage::VisitorSketch); 64 bytes of counters and framing each.
  const double day_bound = (16'384 + 64) +
                           static_cast<double>(day_cells - 1) * ((1 << segment_precision) + 64) +
                           static_cast<double>(pair_cells) * 64;
  std::printf(
      "disk after compaction: minute %.2f MB, hour %.2f MB, day %.2f MB (%zu cells, of which "
      "%zu pairs)\n",
      minute / 1e6, hour / 1e6, day / 1e6, day_cells + pair_cells, pair_cells);
  std::printf(
      "per day of traffic at %.0f events/s: %.1f MB (minute and hour x %.1f, day as "
      "measured; with every day cell dense: at most %.1f MB)\n",
      rate, per_day / 1e6, scale,
      (static_cast<double>(minute + hour) * scale + std::max<double>(day, day_bound)) / 1e6);
  // Bytes kept for these days of each resolution, of families measured as {minute, hour, day}
  // (the minute and hour families scaled to a day).
  auto kept_of = [&](const std::array<double, 3>& family, double minute_days, double hour_days,
                     double day_days) {
    return family[0] * scale * minute_days + family[1] * scale * hour_days + family[2] * day_days;
  };
  const std::array<double, 3> disk = {static_cast<double>(minute), static_cast<double>(hour),
                                      static_cast<double>(day)};
  auto kept = [&](double minute_days, double hour_days, double day_days) {
    return kept_of(disk, minute_days, hour_days, day_days);
  };
  std::printf(
      "per 30 days of traffic (7 d of minutes, 30 d of hours and days; the issue's budget is "
      "200 MB): %.0f MB\n",
      kept(7, 30, 30) / 1e6);
  std::printf("retention defaults (7 d minutes, 90 d hours, 730 d days): %.2f GB\n",
              kept(7, 90, 730) / 1e9);
  // The floor under the registers: each cell's registers coded at the entropy of their own
  // histogram. HyperLogLog registers are independent given the cell's count, so no encoding
  // that stores each cell on its own, as the store does (ZSTD's, or an entropy coder of our
  // own), keeps them in fewer bits on average; the counters and page-load bins come on top.
  // This says what the disk budget needs of the precisions, whatever the cell format.
  std::array<double, 3> floor_bytes{};
  for (Resolution resolution : {Resolution::kMinute, Resolution::kHour, Resolution::kDay}) {
    store->ScanSegments(
        resolution, "", 0, now_s,
        [&](std::string_view, int64_t, const rta::storage::RollupCell& cell) {
          const std::vector<uint8_t>& registers = cell.visitors().registers();
          std::array<uint64_t, 256> histogram{};
          for (uint8_t rank : registers) ++histogram[rank];
          double bits = 0;
          for (uint64_t count : histogram) {
            if (count == 0) continue;
            const double p = static_cast<double>(count) / static_cast<double>(registers.size());
            bits -= static_cast<double>(count) * std::log2(p);
          }
          floor_bytes[static_cast<size_t>(resolution)] += bits / 8;
        },
        &error);
  }
  std::printf(
      "visitor registers at their entropy (the floor of any per-cell encoding): minute %.2f MB, "
      "hour %.2f MB, day %.2f MB; per 30 days %.0f MB of the %.0f\n",
      floor_bytes[0] / 1e6, floor_bytes[1] / 1e6, floor_bytes[2] / 1e6,
      kept_of(floor_bytes, 7, 30, 30) / 1e6, kept(7, 30, 30) / 1e6);

  // 3. Queries: copy the day's hour and day cells to the previous days.
  std::vector<rta::storage::RollupWrite> copies;
  for (Resolution resolution : {Resolution::kHour, Resolution::kDay}) {
    store->ScanSegments(
        resolution, "", day_start_s, now_s,
        [&](std::string_view segment, int64_t bucket, const rta::storage::RollupCell& cell) {
          for (int d = 1; d < days; ++d) {
            copies.push_back({resolution, bucket - d * kDayS, std::string(segment), cell});
          }
        },
        &error);
  }
  for (size_t i = 0; i < copies.size(); i += 4096) {
    std::vector<rta::storage::RollupWrite> batch(
        copies.begin() + static_cast<std::ptrdiff_t>(i),
        copies.begin() + static_cast<std::ptrdiff_t>(std::min(copies.size(), i + 4096)));
    if (!store->Write(batch, false, &error)) {
      std::fprintf(stderr, "history_bench: %s\n", error.c_str());
      return 1;
    }
  }
  copies.clear();
  store->Compact(&error);

  struct Shape {
    const char* name;
    analytics::RangeQuery query;
  };
  std::vector<Shape> shapes(5);
  for (Shape& shape : shapes) {
    shape.query.set_from_ms((now_s - std::min(days, 30) * kDayS) * 1000);
    shape.query.set_to_ms(now_s * 1000);
  }
  shapes[0].name = "totals, every KPI";
  shapes[1].name = "country=DE, every KPI";
  auto* filter = shapes[1].query.add_filters();
  filter->set_dimension("country");
  filter->set_value("DE");
  shapes[2].name = "breakdown by page, top 10";
  shapes[2].query.set_breakdown("page");
  // The shape: one filter and a breakdown (pair cells, per day, additive KPIs).
  shapes[3].name = "country=DE by page, top 10";
  shapes[3].query.set_breakdown("page");
  *shapes[3].query.add_filters() = *filter;
  shapes[4].name = "country=DE, device=mobile";
  *shapes[4].query.add_filters() = *filter;
  auto* device = shapes[4].query.add_filters();
  device->set_dimension("device");
  device->set_value("mobile");
  std::printf("%d-day range queries over %d days of cells, %d each (AnswerRangeQuery, no gRPC):\n",
              std::min(days, 30), days, queries);
  for (const Shape& shape : shapes) {
    std::vector<double> ms;
    ms.reserve(static_cast<size_t>(queries));
    double checksum = 0;
    for (int q = 0; q < queries; ++q) {
      analytics::RangeResult result;
      const auto start = Clock::now();
      const grpc::Status status =
          rta::server::AnswerRangeQuery(shape.query, *store, now_s * 1000, &result);
      ms.push_back(Seconds(Clock::now() - start) * 1000);
      if (!status.ok()) {
        std::fprintf(stderr, "history_bench: %s: %s\n", shape.name, status.error_message().c_str());
        return 1;
      }
      checksum += result.totals(0);
    }
    std::printf("  %-28s p50 %.2f ms  p99 %.2f ms  (events in range %.0f)\n", shape.name,
                Percentile(ms, 0.5), Percentile(ms, 0.99), checksum / queries);
  }
  if (!MeasureCopy(store.get(), dir)) return 1;
  store.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
