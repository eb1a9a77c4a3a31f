#include "server/aggregator/session_table.h"

#include <algorithm>
#include <bit>

#include "server/aggregator/time_key.h"

namespace rta::agg::detail {

SessionTable::SessionTable(uint32_t max_sessions, int64_t ring_seconds)
    : max_sessions_(max_sessions),
      ring_(std::bit_ceil(static_cast<size_t>(std::max<int64_t>(ring_seconds, 64)))) {}

void SessionTable::Contribute(const Record& record, int sign) {
  const int64_t second = FloorDiv(record.last_ms, 1000);
  SecondAggregate& slot = ring_[static_cast<size_t>(second) & (ring_.size() - 1)];
  if (slot.second != second) {
    // Only a newer second may take over a slot; a session whose last event is older than the
    // ring is outside every window and contributes nowhere.
    if (sign < 0 || slot.second > second) return;
    slot = SecondAggregate{second, {}};
  }
  const bool bounced = record.page_views == 1;
  const int64_t duration = record.last_ms - record.first_ms;
  if (sign > 0) {
    slot.totals.sessions += 1;
    slot.totals.bounced += bounced ? 1 : 0;
    slot.totals.duration_ms += duration;
  } else {
    slot.totals.sessions -= 1;
    slot.totals.bounced -= bounced ? 1 : 0;
    slot.totals.duration_ms -= duration;
  }
}

bool SessionTable::Merge(uint64_t hash, const SessionDelta& delta) {
  Record* record = table_.Find(hash);
  if (record == nullptr) {
    if (table_.size() >= max_sessions_) return false;
    record = table_.FindOrInsert(hash).first;
    *record = Record{delta.first_ms, delta.last_ms, delta.page_views, delta.conversions};
    Contribute(*record, +1);
    totals_.sessions += 1;
    totals_.bounced += record->page_views == 1 ? 1 : 0;
    totals_.duration_ms += record->last_ms - record->first_ms;
    return true;
  }
  const Record before = *record;
  Contribute(before, -1);
  record->first_ms = std::min(record->first_ms, delta.first_ms);
  record->last_ms = std::max(record->last_ms, delta.last_ms);
  record->page_views += delta.page_views;
  record->conversions += delta.conversions;
  Contribute(*record, +1);
  totals_.bounced += (record->page_views == 1 ? 1 : 0);
  totals_.bounced -= (before.page_views == 1 ? 1 : 0);
  totals_.duration_ms += (record->last_ms - record->first_ms) - (before.last_ms - before.first_ms);
  return true;
}

void SessionTable::Save(StateWriter& out) const {
  out.U64(table_.size());
  table_.ForEach([&](uint64_t hash, const Record& record) {
    out.U64(hash);
    out.I64(record.first_ms);
    out.I64(record.last_ms);
    out.U32(record.page_views);
    out.U32(record.conversions);
  });
  out.U64(ring_.size());
  for (const SecondAggregate& slot : ring_) {
    out.I64(slot.second);
    out.U64(slot.totals.sessions);
    out.U64(slot.totals.bounced);
    out.I64(slot.totals.duration_ms);
  }
  out.U64(totals_.sessions);
  out.U64(totals_.bounced);
  out.I64(totals_.duration_ms);
}

bool SessionTable::Load(StateReader& in) {
  const uint64_t sessions = in.U64();
  if (in.ok() && sessions > max_sessions_) {
    return in.Fail("checkpoint: it tracks more sessions than max_sessions allows");
  }
  if (sessions * 32 > in.remaining()) return in.Fail("corrupt checkpoint: truncated");
  const auto n = static_cast<size_t>(sessions);
  table_.Reserve(n);
  for (size_t i = 0; i < n && in.ok(); ++i) {
    const uint64_t hash = in.U64();
    Record record;
    record.first_ms = in.I64();
    record.last_ms = in.I64();
    record.page_views = in.U32();
    record.conversions = in.U32();
    if (!in.ok()) break;
    auto [slot, inserted] = table_.FindOrInsert(hash);
    if (hash == 0 || !inserted) return in.Fail("corrupt checkpoint: session hash");
    *slot = record;
  }
  if (in.U64() != ring_.size()) return in.Fail("checkpoint: the session ring's size differs (active_session_seconds, max_event_future_seconds)");
  for (SecondAggregate& slot : ring_) {
    slot.second = in.I64();
    slot.totals.sessions = in.U64();
    slot.totals.bounced = in.U64();
    slot.totals.duration_ms = in.I64();
  }
  totals_.sessions = in.U64();
  totals_.bounced = in.U64();
  totals_.duration_ms = in.I64();
  return in.ok();
}

void SessionTable::Expire(int64_t oldest_second) {
  std::vector<uint64_t> expired;
  table_.ForEach([&](uint64_t hash, const Record& record) {
    if (FloorDiv(record.last_ms, 1000) < oldest_second) expired.push_back(hash);
  });
  for (uint64_t hash : expired) table_.Erase(hash);
  if (!expired.empty()) table_.ShrinkIfSparse(table_.size());
}

SessionTotals SessionTable::Window(int64_t start_second) const {
  SessionTotals sum;
  for (const SecondAggregate& slot : ring_) {
    if (slot.second < start_second) continue;
    sum.sessions += slot.totals.sessions;
    sum.bounced += slot.totals.bounced;
    sum.duration_ms += slot.totals.duration_ms;
  }
  return sum;
}

}  // namespace rta::agg::detail
