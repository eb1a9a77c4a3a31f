#include "server/storage/rollup_accumulator.h"

#include <algorithm>
#include <cstdint>

#include "server/aggregator/state_codec.h"
#include "server/aggregator/time_key.h"

namespace rta::storage {

int RollupDimensionIndex(std::string_view name) {
  for (size_t d = 0; d < kRollupDimensionCount; ++d) {
    if (kRollupDimensions[d] == name) return static_cast<int>(d);
  }
  return -1;
}

std::string SegmentKey(size_t dimension, std::string_view value) {
  std::string key(kRollupDimensions[dimension]);
  key.push_back('=');
  key.append(value);
  return key;
}

namespace {

void AppendPairHead(size_t first, std::string_view first_value, size_t second, std::string* key) {
  key->push_back('\x02');
  key->push_back(static_cast<char>('a' + first));
  key->push_back(static_cast<char>('a' + second));
  // 1 + len / 128 and 1 + len % 128: never NUL, and enough for kRollupMaxValueBytes.
  key->push_back(static_cast<char>(1 + (first_value.size() >> 7)));
  key->push_back(static_cast<char>(1 + (first_value.size() & 127)));
  key->append(first_value);
}

}  // namespace

std::string PairSegmentKey(size_t first, std::string_view first_value, size_t second,
                           std::string_view second_value) {
  std::string key;
  AppendPairHead(first, first_value, second, &key);
  key.append(second_value);
  return key;
}

std::string PairSegmentPrefix(size_t first, std::string_view first_value, size_t second) {
  std::string key;
  AppendPairHead(first, first_value, second, &key);
  return key;
}

namespace {

constexpr uint32_t kNoneId = 0;   // kRollupNoneValue
constexpr uint32_t kOtherId = 1;  // kRollupOtherValue
constexpr int kIdBits = 24;       // ids < 2^24: the cap is at most 1,000,000 (+2)

uint64_t PackPair(size_t first, uint32_t first_id, size_t second, uint32_t second_id) {
  return (uint64_t{first} << 61) | (uint64_t{second} << 58) | (uint64_t{first_id} << kIdBits) |
         second_id;
}

}  // namespace

size_t RollupAccumulator::PairKeyHash::operator()(const PairKey& key) const {
  // splitmix64's finalizer over both words: the packed ids differ in their low bits.
  uint64_t x = key.pair ^ (static_cast<uint64_t>(key.day_s) * 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return static_cast<size_t>(x ^ (x >> 31));
}

RollupAccumulator::RollupAccumulator(const Limits& limits) : limits_(limits) {
  limits_.max_values_per_dimension =
      std::min<uint32_t>(limits_.max_values_per_dimension, (1u << kIdBits) - 2);
  for (size_t d = 0; d < kRollupDimensionCount; ++d) {
    Intern(d, kRollupNoneValue);   // kNoneId
    Intern(d, kRollupOtherValue);  // kOtherId
  }
}

uint32_t RollupAccumulator::Intern(size_t d, std::string_view value) {
  Values& values = values_[d];
  const auto id = static_cast<uint32_t>(values.names.size());
  auto [it, inserted] = values.ids.try_emplace(std::string(value), id);
  if (!inserted) return it->second;
  values.names.emplace_back(value);
  values.segments.push_back(SegmentKey(d, value));
  return id;
}

void RollupAccumulator::Admit(size_t dimension, std::string_view value) {
  Intern(dimension, value);
}

uint32_t RollupAccumulator::Capped(size_t d, std::string_view value) {
  if (value.empty()) return kNoneId;
  Values& values = values_[d];
  // A heterogeneous find would avoid this copy; std::unordered_map<std::string, ...> has none in
  // C++20 without a transparent hasher, and the writer's thread has time to spare.
  const auto found = values.ids.find(std::string(value));
  if (found != values.ids.end()) return found->second;
  // The two reserved ids are not admitted values.
  if (values.names.size() - 2 >= limits_.max_values_per_dimension) {
    ++values_folded_;
    return kOtherId;
  }
  new_values_.emplace_back(d, std::string(value));
  return Intern(d, value);
}

RollupCell& RollupAccumulator::Cell(Resolution resolution, int64_t time_s,
                                    std::string_view segment) {
  const int64_t bucket = BucketStart(resolution, time_s);
  key_.clear();
  key_.push_back(static_cast<char>(resolution));
  key_.append(reinterpret_cast<const char*>(&bucket), sizeof bucket);
  key_.append(segment);
  auto [it, inserted] = cells_.try_emplace(key_);
  if (inserted) {
    it->second.resolution = resolution;
    it->second.bucket_s = bucket;
    it->second.segment.assign(segment);
    // A segment's visitors at a lower precision (VisitorSketch): most of the history's disk.
    if (!segment.empty()) {
      it->second.cell = RollupCell(limits_.segment_visitor_precision);
    } else if (resolution == Resolution::kMinute) {
      it->second.cell = RollupCell(limits_.minute_visitor_precision);
    }
  }
  return it->second.cell;
}

template <typename CellFn, typename PairFn>
void RollupAccumulator::ForEachCell(int64_t time_ms, const ValueIds& values, CellFn&& cell_fn,
                                    PairFn&& pair_fn) {
  const int64_t time_s = agg::detail::FloorDiv(time_ms, 1000);
  cell_fn(Cell(Resolution::kMinute, time_s, ""));
  for (Resolution resolution : {Resolution::kHour, Resolution::kDay}) {
    cell_fn(Cell(resolution, time_s, ""));
    for (size_t d = 0; d < kRollupDimensionCount; ++d) {
      cell_fn(Cell(resolution, time_s, values_[d].segments[values[d]]));
    }
  }
  const int64_t day_s = BucketStart(Resolution::kDay, time_s);
  for (size_t first = 0; first < kRollupDimensionCount; ++first) {
    for (size_t second = first + 1; second < kRollupDimensionCount; ++second) {
      pair_fn(pairs_[PairKey{day_s, PackPair(first, values[first], second, values[second])}]);
    }
  }
}

void RollupAccumulator::Add(const RollupEvent& event) {
  // The session first: its acquisition (referrer, utm_source, utm_campaign) is the session's,
  // as analysts read "conversions by campaign", when the event itself names none.
  Session* session = nullptr;
  bool new_session = false;
  if (event.session_hash != 0) {
    ++folds_;
    newest_ingest_ms_ = std::max(newest_ingest_ms_, event.ingest_ms);
    if (newest_ingest_ms_ >= next_expiry_ms_) ExpireSessions(newest_ingest_ms_);
    auto found = sessions_.find(event.session_hash);
    if (found == sessions_.end()) {
      if (sessions_.size() >= limits_.max_sessions) EvictSessions();
      found = sessions_.try_emplace(event.session_hash).first;
      new_session = true;
    } else if (event.event_ms - found->second.last_ms > limits_.session_timeout_ms) {
      const bool dirty = found->second.dirty;
      found->second = Session();  // the same id after a long pause: a new visit
      found->second.dirty = dirty;
      new_session = true;
    }
    session = &found->second;
    MarkDirty(event.session_hash, session);
    if (new_session) session->first_ms = session->last_ms = event.event_ms;
    session->last_seen = folds_;
    session->last_ingest_ms = std::max(session->last_ingest_ms, event.ingest_ms);
  }
  ValueIds values;
  for (size_t d = 0; d < kRollupDimensionCount; ++d) {
    if (session != nullptr && !new_session && event.dimensions[d].empty() &&
        kRollupSessionScoped[d]) {
      values[d] = session->values[d];
    } else {
      values[d] = Capped(d, event.dimensions[d]);
    }
  }
  RollupCounters delta;
  delta.events = 1;
  delta.page_views = event.kind == RollupEvent::Kind::kPageView;
  delta.conversions =
      event.kind == RollupEvent::Kind::kPurchase || event.kind == RollupEvent::Kind::kSignup;
  if (event.kind == RollupEvent::Kind::kPurchase) delta.revenue_units = RevenueUnits(event.value);
  const bool page_load = event.kind == RollupEvent::Kind::kPageLoad;
  ForEachCell(
      event.event_ms, values,
      [&](RollupCell& cell) {
        cell.counters.Add(delta);
        if (event.visitor_hash != 0) cell.AddVisitor(event.visitor_hash);
        if (page_load) cell.AddPageLoad(event.value);
      },
      [&](RollupCounters& counters) { counters.Add(delta); });
  if (session == nullptr) return;
  if (new_session) {
    session->values = values;
    ForEachCell(
        event.event_ms, values, [](RollupCell& cell) { cell.counters.sessions += 1; },
        [](RollupCounters& counters) { counters.sessions += 1; });
  }
  session->last_ms = std::max(session->last_ms, event.event_ms);
  if (event.kind != RollupEvent::Kind::kPageView) return;
  ++session->page_views;
  if (session->page_views == 1) {
    ForEachCell(
        session->first_ms, session->values, [](RollupCell& cell) { cell.counters.bounces += 1; },
        [](RollupCounters& counters) { counters.bounces += 1; });
  } else if (session->page_views == 2) {
    // Modulo 2^64: the cell's deltas still sum to the number of single-page sessions.
    ForEachCell(
        session->first_ms, session->values, [](RollupCell& cell) { cell.counters.bounces -= 1; },
        [](RollupCounters& counters) { counters.bounces -= 1; });
  }
}

void RollupAccumulator::MarkDirty(uint64_t hash, Session* session) {
  if (session->dirty) return;
  session->dirty = true;
  dirty_sessions_.push_back(hash);
}

void RollupAccumulator::ExpireSessions(int64_t now_ingest_ms) {
  const int64_t oldest = now_ingest_ms - limits_.session_timeout_ms;
  std::erase_if(sessions_, [&](const auto& entry) {
    if (entry.second.last_ingest_ms >= oldest) return false;
    forgotten_sessions_.push_back(entry.first);
    return true;
  });
  next_expiry_ms_ = now_ingest_ms + 60'000;
}

void RollupAccumulator::EvictSessions() {
  const uint64_t keep_from = folds_ - std::min<uint64_t>(folds_, limits_.max_sessions / 2);
  sessions_evicted_ += std::erase_if(sessions_, [&](const auto& entry) {
    if (entry.second.last_seen >= keep_from) return false;
    forgotten_sessions_.push_back(entry.first);
    return true;
  });
}

// A session's stored form: its times and page views as varints, then the names (not the ids,
// which are this process's own) of its first event's values.
RollupAccumulator::SessionChanges RollupAccumulator::TakeSessionChanges() {
  SessionChanges changes;
  changes.forgotten = std::move(forgotten_sessions_);
  forgotten_sessions_.clear();
  for (const uint64_t hash : dirty_sessions_) {
    const auto found = sessions_.find(hash);
    // Gone since (its deletion is in `forgotten`), or already taken (listed twice).
    if (found == sessions_.end() || !found->second.dirty) continue;
    Session& session = found->second;
    session.dirty = false;
    std::string state;
    agg::detail::StateWriter writer(&state);
    writer.VarI64(session.first_ms);
    writer.VarI64(session.last_ms);
    writer.VarI64(session.last_ingest_ms);
    writer.VarU64(session.page_views);
    for (size_t d = 0; d < kRollupDimensionCount; ++d) {
      const std::string& name = values_[d].names[session.values[d]];
      writer.VarU64(name.size());
      writer.Raw(name.data(), name.size());
    }
    changes.states.emplace_back(hash, std::move(state));
  }
  dirty_sessions_.clear();
  return changes;
}

bool RollupAccumulator::RestoreSession(uint64_t session_hash, std::string_view state,
                                       std::string* error) {
  agg::detail::StateReader reader(state);
  Session session;
  session.first_ms = reader.VarI64();
  session.last_ms = reader.VarI64();
  session.last_ingest_ms = reader.VarI64();
  const uint64_t page_views = reader.VarU64();
  std::array<std::string_view, kRollupDimensionCount> names;
  for (std::string_view& name : names) {
    const uint64_t size = reader.VarU64();
    if (reader.ok() && size > kRollupMaxValueBytes) reader.Fail("a value longer than any kept");
    name = reader.Bytes(static_cast<size_t>(size));
  }
  if (reader.ok() && !reader.AtEnd()) reader.Fail("trailing bytes");
  if (reader.ok() && page_views > UINT32_MAX) reader.Fail("page views out of range");
  // Times a validated event can have: Add() subtracts them, which must not overflow.
  constexpr int64_t kMaxStoredMs = int64_t{1} << 50;  // about 35,000 years
  const auto in_range = [](int64_t ms) { return ms >= 0 && ms < kMaxStoredMs; };
  if (reader.ok() && !(in_range(session.first_ms) && in_range(session.last_ms) &&
                       in_range(session.last_ingest_ms) && session.first_ms <= session.last_ms)) {
    reader.Fail("times out of range");
  }
  if (!reader.ok()) {
    *error = "stored session: " + reader.error();
    return false;
  }
  session.page_views = static_cast<uint32_t>(page_views);
  // Capped: a name admitted before the restart was admitted again at start (Admit), so it
  // finds its id; kRollupNoneValue and kRollupOtherValue have theirs.
  for (size_t d = 0; d < kRollupDimensionCount; ++d) session.values[d] = Capped(d, names[d]);
  session.last_seen = folds_;
  newest_ingest_ms_ = std::max(newest_ingest_ms_, session.last_ingest_ms);
  sessions_.insert_or_assign(session_hash, session);
  return true;
}

void RollupAccumulator::ForgetSessions() {
  sessions_.clear();
  dirty_sessions_.clear();
  forgotten_sessions_.clear();
}

std::vector<RollupWrite> RollupAccumulator::TakeWrites() {
  std::vector<RollupWrite> writes;
  writes.reserve(cells_.size() + 2 * pairs_.size());
  for (auto& [key, pending] : cells_) {
    writes.push_back({pending.resolution, pending.bucket_s, std::move(pending.segment),
                      std::move(pending.cell)});
  }
  cells_.clear();
  constexpr uint64_t kIdMask = (uint64_t{1} << kIdBits) - 1;
  for (const auto& [key, counters] : pairs_) {
    const size_t first = key.pair >> 61;
    const size_t second = (key.pair >> 58) & 7;
    const std::string& first_value = values_[first].names[(key.pair >> kIdBits) & kIdMask];
    const std::string& second_value = values_[second].names[key.pair & kIdMask];
    RollupCell cell;
    cell.counters = counters;
    writes.push_back({Resolution::kDay, key.day_s,
                      PairSegmentKey(first, first_value, second, second_value), cell});
    writes.push_back({Resolution::kDay, key.day_s,
                      PairSegmentKey(second, second_value, first, first_value), std::move(cell)});
  }
  pairs_.clear();
  return writes;
}

}  // namespace rta::storage
