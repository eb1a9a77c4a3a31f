#include "server/storage/rollup_event.h"

#include "server/aggregator/event_validation.h"
#include "server/aggregator/hash.h"
#include "server/aggregator/live_segment.h"
#include "server/aggregator/utf8.h"

namespace rta::storage {
namespace {

RollupEvent::Kind RollupKind(agg::EventKind kind) {
  switch (kind) {
    case agg::EventKind::kPageView:
      return RollupEvent::Kind::kPageView;
    case agg::EventKind::kPurchase:
      return RollupEvent::Kind::kPurchase;
    case agg::EventKind::kSignup:
      return RollupEvent::Kind::kSignup;
    case agg::EventKind::kPageLoad:
      return RollupEvent::Kind::kPageLoad;
    case agg::EventKind::kOther:
      break;
  }
  return RollupEvent::Kind::kOther;
}

// A value as a segment key may hold it: without NUL (the key's separator), and cut (at a UTF-8
// boundary) to kRollupMaxValueBytes, as the live windows cut ranked values: every byte of a
// value is in each of its cells' keys.
std::string_view KeyValue(std::string_view value) {
  if (value.find('\0') != std::string_view::npos) return kRollupOtherValue;
  return agg::CutAtUtf8Boundary(value, kRollupMaxValueBytes);
}

}  // namespace

RollupEvent RollupEventOf(const analytics::EventData& event, int64_t ingest_ms,
                          uint64_t visitor_seed, uint64_t session_seed) {
  RollupEvent out;
  out.event_ms = event.timestamp_ms() == 0 ? ingest_ms : event.timestamp_ms();
  out.ingest_ms = ingest_ms;
  out.kind = RollupKind(agg::KindOf(event.event_type()));
  out.value = event.value();
  if (!event.visitor_id().empty()) {
    out.visitor_hash =
        agg::detail::NonZero(agg::detail::HashBytes(event.visitor_id(), visitor_seed));
  }
  if (!event.session_id().empty()) {
    out.session_hash =
        agg::detail::NonZero(agg::detail::HashBytes(event.session_id(), session_seed));
  }
  const agg::SegmentFields fields = agg::RawSegmentFieldsOf(event);
  for (size_t d = 0; d < kRollupDimensionCount; ++d) out.dimensions[d] = KeyValue(fields[d]);
  return out;
}

}  // namespace rta::storage
