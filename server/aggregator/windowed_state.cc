#include "server/aggregator/windowed_state.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace rta::agg::detail {
namespace {

constexpr int64_t kSessionSweepPeriodSeconds = 60;
constexpr size_t kIngestRing = 16;

size_t RingIndex(int64_t unit, size_t size) {
  const auto n = static_cast<int64_t>(size);
  return static_cast<size_t>(((unit % n) + n) % n);
}

void AddDimensionCounts(std::vector<uint64_t>& into, const std::vector<uint64_t>& from) {
  if (into.size() < from.size()) into.resize(from.size(), 0);
  for (size_t i = 0; i < from.size(); ++i) into[i] += from[i];
}

// Longer texts cannot come from a valid event (kMaxFieldBytes), so a longer one is corruption.
constexpr size_t kMaxCheckpointTextBytes = 1 << 16;

void SaveBucket(StateWriter& out, const WindowBucket& bucket) {
  out.I64(bucket.tag);
  bucket.counters.Save(out);
  out.Bool(bucket.has_visitors);
  if (bucket.has_visitors) bucket.visitors->Save(out);
  // An empty sketch or summary adds nothing to any window: it is not saved, and after a restore
  // it is allocated again on first use.
  const bool page_loads = bucket.page_loads && !bucket.page_loads->empty();
  out.Bool(page_loads);
  if (page_loads) bucket.page_loads->Save(out);
  for (const auto& summary : bucket.ranked) {
    const bool present = summary && !summary->empty();
    out.Bool(present);
    if (present) summary->Save(out);
  }
  for (const auto& counts : bucket.dimensions) {
    out.U64(counts.size());
    out.Raw(counts.data(), counts.size() * sizeof(uint64_t));
  }
}

bool LoadBucket(StateReader& in, uint32_t top_k_capacity, uint64_t max_series,
                WindowBucket* bucket) {
  bucket->tag = in.I64();
  bucket->counters.Load(in);
  bucket->has_visitors = in.Bool();
  if (bucket->has_visitors) {
    bucket->visitors = std::make_unique<HyperLogLog>();
    if (!bucket->visitors->Load(in)) return false;
  }
  if (in.Bool()) {
    bucket->page_loads = std::make_unique<QuantileSketch>();
    if (!bucket->page_loads->Load(in)) return false;
  }
  for (auto& summary : bucket->ranked) {
    if (in.Bool()) {
      summary = std::make_unique<SpaceSaving>(top_k_capacity);
      if (!summary->Load(in)) return false;
    }
  }
  for (auto& counts : bucket->dimensions) {
    counts.resize(in.Count(sizeof(uint64_t), max_series));
    in.Raw(counts.data(), counts.size() * sizeof(uint64_t));
  }
  return in.ok();
}

}  // namespace

void WindowBucket::Reset(int64_t new_tag) {
  tag = new_tag;
  counters = BucketCounters{};
  if (has_visitors) visitors->Clear();
  has_visitors = false;
  if (page_loads) page_loads->Clear();
  for (auto& summary : ranked) {
    if (summary) summary->Clear();
  }
  for (auto& counts : dimensions) std::fill(counts.begin(), counts.end(), 0);
}

// Sums buckets into one window. Reset() keeps every allocation; Fill() only reads, so a window
// can be extended after it was read (1m, then the rest of 5m).
class WindowedState::Accumulator {
 public:
  Accumulator()
      : visitors_(std::make_unique<HyperLogLog>()),
        page_loads_(std::make_unique<QuantileSketch>()) {}

  void Reset() {
    counters_ = BucketCounters{};
    if (has_visitors_) visitors_->Clear();
    has_visitors_ = false;
    page_loads_->Clear();
    for (TopMerger& merger : top_) merger.Reset();
    for (auto& counts : dimensions_) counts.clear();
  }

  void Add(const WindowBucket& bucket) {
    counters_.Add(bucket.counters);
    if (bucket.has_visitors) {
      visitors_->Merge(*bucket.visitors);
      has_visitors_ = true;
    }
    if (bucket.page_loads) page_loads_->Merge(*bucket.page_loads);
    for (size_t kind = 0; kind < kRankedCount; ++kind) {
      if (bucket.ranked[kind]) top_[kind].Add(*bucket.ranked[kind]);
    }
    for (size_t d = 0; d < kDimensionCount; ++d) {
      AddDimensionCounts(dimensions_[d], bucket.dimensions[d]);
    }
  }

  void Add(const Accumulator& other) {
    counters_.Add(other.counters_);
    if (other.has_visitors_) {
      visitors_->Merge(*other.visitors_);
      has_visitors_ = true;
    }
    page_loads_->Merge(*other.page_loads_);
    for (size_t kind = 0; kind < kRankedCount; ++kind) top_[kind].Add(other.top_[kind]);
    for (size_t d = 0; d < kDimensionCount; ++d) {
      AddDimensionCounts(dimensions_[d], other.dimensions_[d]);
    }
  }

  void Fill(size_t top_k, const KeyDictionary& dictionary,
            const std::array<DimensionTable, kDimensionCount>& tables, WindowResult* out) const {
    out->counters = counters_;
    // HLL estimates are fractional; a whole number of visitors reads better and does not make
    // the series "change" from estimator noise.
    out->unique_visitors = has_visitors_ ? std::round(visitors_->Estimate()) : 0.0;
    out->page_load_p50 = page_loads_->Quantile(0.50);
    out->page_load_p95 = page_loads_->Quantile(0.95);
    out->page_load_p99 = page_loads_->Quantile(0.99);
    for (size_t kind = 0; kind < kRankedCount; ++kind) {
      out->top[kind] = top_[kind].Top(top_k, counters_.ranked_totals[kind], dictionary);
    }
    for (size_t d = 0; d < kDimensionCount; ++d) {
      out->dimensions[d] = dimensions_[d];
      out->dimensions[d].resize(tables[d].values().size(), 0);
    }
  }

 private:
  BucketCounters counters_;
  std::unique_ptr<HyperLogLog> visitors_;
  bool has_visitors_ = false;
  std::unique_ptr<QuantileSketch> page_loads_;
  std::array<TopMerger, kRankedCount> top_;
  std::array<std::vector<uint64_t>, kDimensionCount> dimensions_;
};

WindowedState::WindowedState(const AggregatorConfig& config, uint64_t overflow_key)
    : config_(config),
      future_seconds_(std::clamp<int64_t>(config.max_event_future_seconds, 0, 3600)),
      future_minutes_((future_seconds_ + 59) / 60),
      seconds_(static_cast<size_t>(kSecondSpan + future_seconds_ + 2)),
      minutes_(static_cast<size_t>(kMinuteSpan + future_minutes_ + 2)),
      dimensions_{DimensionTable(config.dimension_cardinality_cap),
                  DimensionTable(config.dimension_cardinality_cap)},
      dictionary_(config.key_dictionary_max_bytes),
      overflow_key_(overflow_key),
      sessions_(config.max_sessions,
                std::max<int64_t>(kMinuteSpan * 60, config.active_session_seconds) +
                    future_seconds_ + 120),
      accumulator_(std::make_unique<Accumulator>()),
      closed_1m_(std::make_unique<Accumulator>()),
      closed_5m_rest_(std::make_unique<Accumulator>()),
      closed_1h_(std::make_unique<Accumulator>()) {
  config_.active_session_seconds =
      std::clamp<int64_t>(config.active_session_seconds, 1, kMinuteSpan * 60);
  dictionary_.Pin(overflow_key_, kOtherValue);
  dictionary_bytes_.store(dictionary_.bytes(), std::memory_order_relaxed);
}

uint64_t WindowedState::AdmitRankedKey(uint64_t key, std::string_view text, uint64_t count,
                                       int64_t now_second) {
  if (dictionary_.Intern(key, text)) return key;
  // Over budget: texts of keys that expired from every summary may still be held (collection
  // is amortized), so collect once, but at most once per clock second: when the live set
  // itself fills the budget, a collection per key would make the tick quadratic.
  if (budget_collect_second_ != now_second) {
    budget_collect_second_ = now_second;
    CollectDictionary();
    if (dictionary_.Intern(key, text)) return key;
  }
  ranked_folded_.store(ranked_folded_.load(std::memory_order_relaxed) + count,
                       std::memory_order_relaxed);
  return overflow_key_;
}

WindowedState::~WindowedState() = default;

WindowBucket* WindowedState::SecondBucket(int64_t second, int64_t now_second) {
  if (second <= now_second - kSecondSpan || second > now_second + future_seconds_) return nullptr;
  WindowBucket& bucket = seconds_[RingIndex(second, seconds_.size())];
  if (bucket.tag != second) {
    if (bucket.tag > second) return nullptr;  // only after the clock stepped back
    bucket.Reset(second);
  }
  return &bucket;
}

WindowBucket* WindowedState::MinuteBucket(int64_t minute, int64_t now_second) {
  const int64_t now_minute = FloorDiv(now_second, 60);
  if (minute <= now_minute - kMinuteSpan || minute > now_minute + future_minutes_) return nullptr;
  WindowBucket& bucket = minutes_[RingIndex(minute, minutes_.size())];
  if (bucket.tag != minute) {
    if (bucket.tag > minute) return nullptr;
    bucket.Reset(minute);
  }
  return &bucket;
}

void WindowedState::EnsureRanked(WindowBucket* bucket, size_t kind) const {
  if (!bucket->ranked[kind]) {
    bucket->ranked[kind] = std::make_unique<SpaceSaving>(config_.top_k_capacity);
  }
}

void WindowedState::Merge(const ShardDelta& delta, int64_t now_ms) {
  const int64_t now_second = FloorDiv(now_ms, 1000);
  for (const std::unique_ptr<DeltaBucket>& owned : delta.buckets()) {
    const DeltaBucket& part = *owned;
    std::array<WindowBucket*, 3> targets{};
    size_t n = 0;
    switch (part.key.granularity()) {
      case TimeKey::Granularity::kSecond:
        if (WindowBucket* b = SecondBucket(part.key.unit(), now_second)) {
          targets[n++] = b;
          oldest_changed_second_ = std::min(oldest_changed_second_, part.key.unit());
        }
        if (WindowBucket* b = MinuteBucket(FloorDiv(part.key.unit(), 60), now_second)) {
          targets[n++] = b;
          oldest_changed_minute_ = std::min(oldest_changed_minute_, FloorDiv(part.key.unit(), 60));
        }
        break;
      case TimeKey::Granularity::kMinute:
        if (WindowBucket* b = MinuteBucket(part.key.unit(), now_second)) {
          targets[n++] = b;
          oldest_changed_minute_ = std::min(oldest_changed_minute_, part.key.unit());
        }
        break;
      case TimeKey::Granularity::kTotalOnly:
        break;
    }
    targets[n++] = &total_;
    const std::span<WindowBucket* const> into(targets.data(), n);

    for (WindowBucket* b : into) b->counters.Add(part.counters);
    if (part.has_visitors) {
      for (WindowBucket* b : into) {
        if (!b->visitors) b->visitors = std::make_unique<HyperLogLog>();
        b->visitors->Merge(*part.visitors);
        b->has_visitors = true;
      }
    }
    if (part.page_loads && !part.page_loads->empty()) {
      for (WindowBucket* b : into) {
        if (!b->page_loads) b->page_loads = std::make_unique<QuantileSketch>();
        b->page_loads->Merge(*part.page_loads);
      }
    }
    for (size_t kind = 0; kind < kRankedCount; ++kind) {
      part.ranked[kind].ForEach([&](uint64_t key, const KeyCount& count) {
        const uint64_t admitted = AdmitRankedKey(key, delta.Text(count), count.count, now_second);
        for (WindowBucket* b : into) {
          EnsureRanked(b, kind);
          b->ranked[kind]->Add(admitted, count.count);
        }
      });
    }
    for (size_t d = 0; d < kDimensionCount; ++d) {
      part.dimensions[d].ForEach([&](uint64_t key, const KeyCount& count) {
        bool folded = false;
        const uint32_t index = dimensions_[d].Resolve(key, delta.Text(count), &folded);
        if (folded)
          folded_.store(folded_.load(std::memory_order_relaxed) + count.count,
                        std::memory_order_relaxed);
        for (WindowBucket* b : into) {
          std::vector<uint64_t>& counts = b->dimensions[d];
          if (counts.size() <= index) counts.resize(index + 1, 0);
          counts[index] += count.count;
        }
      });
    }
  }

  delta.sessions().ForEach([&](uint64_t hash, const SessionDelta& session) {
    if (sessions_.Merge(hash, session)) return;
    // Full: make room by expiring idle sessions (at most once per clock second), then retry.
    if (swept_for_space_second_ != now_second) {
      swept_for_space_second_ = now_second;
      ExpireSessions(now_second);
      if (sessions_.Merge(hash, session)) return;
    }
    sessions_dropped_.store(sessions_dropped_.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
  });

  for (const IngestCount& count : delta.ingest_counts()) {
    if (count.count == 0) continue;
    IngestCount& slot = ingest_counts_[RingIndex(count.second, kIngestRing)];
    if (slot.second != count.second) {
      if (slot.second > count.second) continue;
      slot = IngestCount{count.second, 0};
    }
    slot.count += count.count;
  }
}

void WindowedState::ExpireSessions(int64_t now_second) {
  // Older than every window's start: 1h starts at most 3659 s back, active sessions at most
  // active_session_seconds back.
  const int64_t keep = std::max<int64_t>(kMinuteSpan * 60 + 60, config_.active_session_seconds);
  sessions_.Expire(now_second - keep);
}

void WindowedState::CollectDictionary() {
  std::unordered_set<uint64_t> live;
  auto mark = [&](const WindowBucket& bucket) {
    for (const auto& summary : bucket.ranked) {
      if (!summary) continue;
      for (const SpaceSaving::Counter& counter : summary->counters()) live.insert(counter.key);
    }
  };
  for (const WindowBucket& bucket : seconds_) mark(bucket);
  for (const WindowBucket& bucket : minutes_) mark(bucket);
  mark(total_);
  dictionary_.Collect(live);
  dictionary_live_after_collect_ = dictionary_.size();
  dictionary_bytes_.store(dictionary_.bytes(), std::memory_order_relaxed);
}

void WindowedState::Maintain(int64_t now_ms) {
  const int64_t now_second = FloorDiv(now_ms, 1000);
  const bool never_swept = last_session_sweep_second_ == std::numeric_limits<int64_t>::min();
  if (never_swept || now_second < last_session_sweep_second_ ||
      now_second - last_session_sweep_second_ >= kSessionSweepPeriodSeconds) {
    last_session_sweep_second_ = now_second;
    ExpireSessions(now_second);
  }
  // Amortized: a collection costs about as much as the texts added since the previous one.
  if (dictionary_.size() > 2 * dictionary_live_after_collect_ + 4096) CollectDictionary();
  dictionary_bytes_.store(dictionary_.bytes(), std::memory_order_relaxed);
}

void WindowedState::SumClosedSeconds(int64_t now_second) {
  const int64_t start_1m = now_second - kOneMinuteWindowSeconds + 1;
  const int64_t start_5m = now_second - kSecondSpan + 1;
  closed_1m_->Reset();
  closed_5m_rest_->Reset();
  for (const WindowBucket& b : seconds_) {
    if (b.tag >= start_1m && b.tag < now_second) {
      closed_1m_->Add(b);
    } else if (b.tag >= start_5m && b.tag < start_1m) {
      closed_5m_rest_->Add(b);
    }
  }
  closed_at_second_ = now_second;
  oldest_changed_second_ = std::numeric_limits<int64_t>::max();
}

void WindowedState::SumClosedMinutes(int64_t now_minute) {
  const int64_t start_1h_minute = now_minute - kMinuteSpan + 1;
  closed_1h_->Reset();
  for (const WindowBucket& b : minutes_) {
    if (b.tag >= start_1h_minute && b.tag < now_minute) closed_1h_->Add(b);
  }
  closed_at_minute_ = now_minute;
  oldest_changed_minute_ = std::numeric_limits<int64_t>::max();
}

void WindowedState::Compute(int64_t now_ms, TickMetrics* out) {
  const int64_t now_second = FloorDiv(now_ms, 1000);
  const int64_t now_minute = FloorDiv(now_second, 60);
  const int64_t start_1m = now_second - kOneMinuteWindowSeconds + 1;
  const int64_t start_5m = now_second - kSecondSpan + 1;
  const int64_t end_second = now_second + future_seconds_;
  const int64_t start_1h_minute = now_minute - kMinuteSpan + 1;
  const size_t top_k = config_.top_k;
  Accumulator& acc = *accumulator_;

  if (closed_at_second_ != now_second || oldest_changed_second_ < now_second) {
    SumClosedSeconds(now_second);
  }
  if (closed_at_minute_ != now_minute || oldest_changed_minute_ < now_minute) {
    SumClosedMinutes(now_minute);
  }

  acc.Reset();
  acc.Add(*closed_1m_);
  for (const WindowBucket& b : seconds_) {
    if (b.tag >= now_second && b.tag <= end_second) acc.Add(b);
  }
  acc.Fill(top_k, dictionary_, dimensions_, &out->windows[0]);
  acc.Add(*closed_5m_rest_);
  acc.Fill(top_k, dictionary_, dimensions_, &out->windows[1]);

  acc.Reset();
  acc.Add(*closed_1h_);
  for (const WindowBucket& b : minutes_) {
    if (b.tag >= now_minute && b.tag <= now_minute + future_minutes_) acc.Add(b);
  }
  acc.Fill(top_k, dictionary_, dimensions_, &out->windows[2]);

  acc.Reset();
  acc.Add(total_);
  acc.Fill(top_k, dictionary_, dimensions_, &out->windows[3]);

  out->windows[0].sessions = sessions_.Window(start_1m);
  out->windows[1].sessions = sessions_.Window(start_5m);
  out->windows[2].sessions = sessions_.Window(start_1h_minute * 60);
  out->windows[3].sessions = sessions_.totals();
  out->active_sessions = sessions_.Window(now_second - config_.active_session_seconds + 1).sessions;

  uint64_t last_second = 0;
  uint64_t last_ten = 0;
  for (const IngestCount& count : ingest_counts_) {
    if (count.second == now_second - 1) last_second = count.count;
    if (count.second >= now_second - 10 && count.second <= now_second - 1) last_ten += count.count;
  }
  out->events_per_second = static_cast<double>(last_second);
  out->events_per_second_10s = static_cast<double>(last_ten) / 10.0;
  for (size_t d = 0; d < kDimensionCount; ++d) out->dimension_values[d] = &dimensions_[d].values();
}

void WindowedState::Save(StateWriter& out) const {
  out.U64(seconds_.size());
  for (const WindowBucket& bucket : seconds_) SaveBucket(out, bucket);
  out.U64(minutes_.size());
  for (const WindowBucket& bucket : minutes_) SaveBucket(out, bucket);
  SaveBucket(out, total_);
  for (const DimensionTable& table : dimensions_) table.Save(out);
  dictionary_.Save(out);
  out.I64(budget_collect_second_);
  out.U64(dictionary_live_after_collect_);
  sessions_.Save(out);
  out.I64(last_session_sweep_second_);
  out.I64(swept_for_space_second_);
  for (const IngestCount& count : ingest_counts_) {
    out.I64(count.second);
    out.U64(count.count);
  }
  out.U64(folded_.load(std::memory_order_relaxed));
  out.U64(sessions_dropped_.load(std::memory_order_relaxed));
  out.U64(ranked_folded_.load(std::memory_order_relaxed));
}

bool WindowedState::Load(StateReader& in) {
  // Series indexes: at most the cap plus __other__ (and a client's literal "__other__").
  const uint64_t max_series = uint64_t{config_.dimension_cardinality_cap} + 2;
  const uint32_t capacity = config_.top_k_capacity;
  if (in.U64() != seconds_.size()) return in.Fail("checkpoint: the second ring's size differs");
  for (WindowBucket& bucket : seconds_) {
    if (!LoadBucket(in, capacity, max_series, &bucket)) return in.Fail("checkpoint: bucket");
  }
  if (in.U64() != minutes_.size()) return in.Fail("checkpoint: the minute ring's size differs");
  for (WindowBucket& bucket : minutes_) {
    if (!LoadBucket(in, capacity, max_series, &bucket)) return in.Fail("checkpoint: bucket");
  }
  if (!LoadBucket(in, capacity, max_series, &total_)) return in.Fail("checkpoint: bucket");
  for (DimensionTable& table : dimensions_) {
    if (!table.Load(in)) return false;
  }
  if (!dictionary_.Load(in, kMaxCheckpointTextBytes)) return false;
  budget_collect_second_ = in.I64();
  dictionary_live_after_collect_ = static_cast<size_t>(in.U64());
  if (!sessions_.Load(in)) return false;
  last_session_sweep_second_ = in.I64();
  swept_for_space_second_ = in.I64();
  for (IngestCount& count : ingest_counts_) {
    count.second = in.I64();
    count.count = in.U64();
  }
  folded_.store(in.U64(), std::memory_order_relaxed);
  sessions_dropped_.store(in.U64(), std::memory_order_relaxed);
  ranked_folded_.store(in.U64(), std::memory_order_relaxed);
  dictionary_bytes_.store(dictionary_.bytes(), std::memory_order_relaxed);
  // The closed sums are not in the checkpoint: the next Compute() sums them afresh.
  closed_at_second_ = std::numeric_limits<int64_t>::min();
  closed_at_minute_ = std::numeric_limits<int64_t>::min();
  oldest_changed_second_ = std::numeric_limits<int64_t>::max();
  oldest_changed_minute_ = std::numeric_limits<int64_t>::max();
  return in.ok();
}

}  // namespace rta::agg::detail
