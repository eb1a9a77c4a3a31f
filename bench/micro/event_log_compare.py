#!/usr/bin/env python3
"""A/B pairs of event_log_bench: the segment log (kAlways) against RocksDB's WAL (sync=true).

Sync latency on a shared VM varies by 2-3x from one second to the next, so each pair runs
back to back, in alternating order, `rounds` times; the median of the per-pair ratios is the
number to read (bench/README.md, "Event log: segment files vs RocksDB WAL").

  python3 bench/micro/event_log_compare.py [build/release/bench/micro/event_log_bench] [rounds]
"""
import json, subprocess, statistics, sys
binary = sys.argv[1] if len(sys.argv) > 1 else "build/release/bench/micro/event_log_bench"
pairs = [
  ("BM_SegmentLog/fsync:0/bytes:1024/real_time/threads:1$", "BM_RocksDbWal/bytes:1024/real_time/threads:1$"),
  ("BM_SegmentLog/fsync:0/bytes:1024/real_time/threads:4$", "BM_RocksDbWal/bytes:1024/real_time/threads:4$"),
  ("BM_SegmentLog/fsync:0/bytes:12288/real_time/threads:1$", "BM_RocksDbWal/bytes:12288/real_time/threads:1$"),
  ("BM_SegmentLog/fsync:0/bytes:12288/real_time/threads:4$", "BM_RocksDbWal/bytes:12288/real_time/threads:4$"),
]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
def run(f):
    out = subprocess.run([binary, "--benchmark_filter=" + f, "--benchmark_min_time=0.3", "--benchmark_format=json"],
                         capture_output=True, text=True).stdout
    b = json.loads(out)["benchmarks"][0]
    return b["items_per_second"], b["disk_per_payload"]
for a, b in pairs:
    ra, rb, ratios, da, db = [], [], [], [], []
    for i in range(rounds):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        x = run(first); y = run(second)
        sa, sb = (x, y) if i % 2 == 0 else (y, x)
        ra.append(sa[0]); rb.append(sb[0]); ratios.append(sa[0] / sb[0]); da.append(sa[1]); db.append(sb[1])
    name = a.replace("BM_SegmentLog/fsync:0/", "").rstrip("$")
    print(f"{name:34s} seg {statistics.median(ra):8.0f}/s disk {statistics.median(da):.2f} | rocks {statistics.median(rb):8.0f}/s disk {statistics.median(db):.2f} | ratio median {statistics.median(ratios):.2f} (min {min(ratios):.2f} max {max(ratios):.2f})", flush=True)
