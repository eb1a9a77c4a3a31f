#include "server/aggregator/partial_codec.h"

#include <array>
#include <cmath>
#include <cstring>

#include "server/aggregator/event_validation.h"
#include "server/aggregator/hash.h"
#include "server/aggregator/state_codec.h"

namespace rta::agg::detail {
namespace {

constexpr char kMagic[8] = {'R', 'T', 'A', 'P', 'A', 'R', 'T', '\n'};
constexpr size_t kHeaderBytes = sizeof kMagic + sizeof(uint32_t) + sizeof(uint64_t);
constexpr size_t kChecksumBytes = sizeof(uint64_t);

// Bounds on what a partial may hold, so that a damaged count never drives a huge allocation.
// A delta holds one bucket per time key its events fell in during one exchange (about 300
// seconds + 60 minutes + the future allowance, TimeKey::For), and a partial one delta per shard.
// Each decoded bucket may allocate a 16 KiB HyperLogLog and an 18 KiB quantile sketch, but only
// one delta is decoded at a time, so a partial costs at most kMaxBuckets of those.
constexpr uint64_t kMaxDeltas = 1024;
constexpr uint64_t kMaxBuckets = 8192;
constexpr uint64_t kMaxEntries = uint64_t{1} << 24;  // keys of one map, sessions of one delta
// Offsets into a delta's text arena are 32-bit.
constexpr size_t kMaxPartialBytes = size_t{1} << 30;
// Times of events, sessions and time keys: far beyond any real date, far from overflowing
// the windows' arithmetic on them.
constexpr int64_t kMaxTime = int64_t{1} << 53;

constexpr uint8_t kHasVisitors = 1;
constexpr uint8_t kHasPageLoads = 2;
constexpr uint8_t kHllSparse = 0;
constexpr uint8_t kHllRaw = 1;
// Bytes of one sparse register (U16 index, U8 rank) and of the sparse form's count.
constexpr size_t kSparseRegisterBytes = 3;

bool InTimeRange(int64_t value) { return value >= -kMaxTime && value <= kMaxTime; }

// Sparse (index, rank) pairs of the non-zero registers, or all of them raw: whichever is
// smaller. A delta's sketch holds at most one register per event of its bucket, so the sparse
// form is the usual one and a second's partial costs bytes, not 16 KiB.
void EncodeVisitors(const HyperLogLog& visitors, StateWriter& out) {
  uint32_t nonzero = 0;
  for (size_t i = 0; i < HyperLogLog::kRegisters; ++i) nonzero += visitors.Register(i) != 0;
  if (sizeof(uint32_t) + nonzero * kSparseRegisterBytes >= HyperLogLog::kRegisters) {
    out.U8(kHllRaw);
    visitors.Save(out);
    return;
  }
  out.U8(kHllSparse);
  out.U32(nonzero);
  for (size_t i = 0; i < HyperLogLog::kRegisters; ++i) {
    const uint8_t rank = visitors.Register(i);
    if (rank == 0) continue;
    const auto index = static_cast<uint16_t>(i);
    out.Raw(&index, sizeof index);
    out.U8(rank);
  }
}

void EncodeKeys(const ShardDelta& delta, const FlatMap<KeyCount>& map, StateWriter& out) {
  out.U64(map.size());
  map.ForEach([&](uint64_t hash, const KeyCount& count) {
    out.U64(hash);
    out.U64(count.count);
    out.String(delta.Text(count));
  });
}

void EncodeBucket(const ShardDelta& delta, const DeltaBucket& bucket, StateWriter& out) {
  out.I64(bucket.key.code());
  bucket.counters.Save(out);
  const bool page_loads = bucket.page_loads && !bucket.page_loads->empty();
  out.U8(static_cast<uint8_t>((bucket.has_visitors ? kHasVisitors : 0) |
                              (page_loads ? kHasPageLoads : 0)));
  if (bucket.has_visitors) EncodeVisitors(*bucket.visitors, out);
  if (page_loads) bucket.page_loads->Save(out);
  for (const FlatMap<KeyCount>& map : bucket.ranked) EncodeKeys(delta, map, out);
  for (const FlatMap<KeyCount>& map : bucket.dimensions) EncodeKeys(delta, map, out);
}

void EncodeDelta(const ShardDelta& delta, StateWriter& out) {
  out.U64(delta.buckets().size());
  for (const std::unique_ptr<DeltaBucket>& bucket : delta.buckets()) {
    EncodeBucket(delta, *bucket, out);
  }
  out.U64(delta.sessions().size());
  delta.sessions().ForEach([&](uint64_t hash, const SessionDelta& session) {
    out.U64(hash);
    out.I64(session.first_ms);
    out.I64(session.last_ms);
    out.U32(session.page_views);
    out.U32(session.conversions);
  });
  uint64_t counts = 0;
  for (const IngestCount& count : delta.ingest_counts()) counts += count.count != 0;
  out.U64(counts);
  for (const IngestCount& count : delta.ingest_counts()) {
    if (count.count == 0) continue;
    out.I64(count.second);
    out.U64(count.count);
  }
}

// Decodes one delta into a cleared `delta`. Every check fails the reader with a message; the
// caller reports in.error().
class DeltaDecoder {
 public:
  DeltaDecoder(StateReader& in, ShardDelta& delta) : in_(in), delta_(delta) {}

  bool Decode() {
    // The smallest bucket: time key, counters, flags, five empty maps.
    constexpr size_t kMinBucketBytes = 8 + 8 * (4 + kSignalCount + kRankedCount) + 1 + 5 * 8;
    const size_t buckets = in_.Count(kMinBucketBytes, kMaxBuckets);
    for (size_t i = 0; i < buckets && in_.ok(); ++i) Bucket();
    const size_t sessions = in_.Count(32, kMaxEntries);
    for (size_t i = 0; i < sessions && in_.ok(); ++i) Session();
    const size_t counts = in_.Count(16, ShardDelta::kIngestSeconds);
    for (size_t i = 0; i < counts && in_.ok(); ++i) {
      const int64_t second = in_.I64();
      const uint64_t count = in_.U64();
      if (in_.ok() && (!InTimeRange(second) || count == 0)) {
        return in_.Fail("corrupt partial: an ingest count's second or count");
      }
      delta_.SetIngestCount(i, IngestCount{second, count});
    }
    if (in_.ok() && delta_.empty()) return in_.Fail("corrupt partial: an empty delta");
    return in_.ok();
  }

 private:
  void Bucket() {
    const int64_t code = in_.I64();
    if (!in_.ok()) return;
    if (!InTimeRange(code)) {
      in_.Fail("corrupt partial: a bucket's time key");
      return;
    }
    TimeKey key;
    switch (code & 3) {
      case static_cast<int64_t>(TimeKey::Granularity::kSecond):
        key = TimeKey::Second(FloorDiv(code, 4));
        break;
      case static_cast<int64_t>(TimeKey::Granularity::kMinute):
        key = TimeKey::Minute(FloorDiv(code, 4));
        break;
      default:
        key = TimeKey::TotalOnly();
        break;
    }
    if (key.code() != code) {  // a kind that does not exist, or a total-only key with a unit
      in_.Fail("corrupt partial: a bucket's time key");
      return;
    }
    DeltaBucket& bucket = delta_.AppendBucket(key);
    Counters(bucket.counters);
    const uint8_t flags = in_.U8();
    if (in_.ok() && (flags & ~(kHasVisitors | kHasPageLoads)) != 0) {
      in_.Fail("corrupt partial: a bucket's flags");
      return;
    }
    if ((flags & kHasVisitors) != 0) Visitors(bucket);
    if ((flags & kHasPageLoads) != 0 && in_.ok()) {
      if (!bucket.page_loads) bucket.page_loads = std::make_unique<QuantileSketch>();
      if (bucket.page_loads->Load(in_) && bucket.page_loads->empty()) {
        in_.Fail("corrupt partial: an empty quantile sketch");
      }
    }
    for (FlatMap<KeyCount>& map : bucket.ranked) Keys(map);
    for (FlatMap<KeyCount>& map : bucket.dimensions) Keys(map);
  }

  void Counters(BucketCounters& counters) {
    counters.Load(in_);
    // Purchase values are finite and non-negative (ValidateEvent), and so are their sums.
    if (in_.ok() && !(std::isfinite(counters.revenue) && counters.revenue >= 0.0)) {
      in_.Fail("corrupt partial: a bucket's revenue");
    }
  }

  void Visitors(DeltaBucket& bucket) {
    const uint8_t form = in_.U8();
    if (!in_.ok()) return;
    if (!bucket.visitors) bucket.visitors = std::make_unique<HyperLogLog>();
    // Set before any register: DeltaBucket::Clear() clears the sketch only when it is set.
    bucket.has_visitors = true;
    if (form == kHllRaw) {
      if (bucket.visitors->Load(in_) && bucket.visitors->IsEmpty()) {
        in_.Fail("corrupt partial: an empty HyperLogLog");
      }
      return;
    }
    if (form != kHllSparse) {
      in_.Fail("corrupt partial: unknown HyperLogLog form");
      return;
    }
    const uint32_t count = in_.U32();
    if (in_.ok() && (count == 0 || count > HyperLogLog::kRegisters ||
                     count * kSparseRegisterBytes > in_.remaining())) {
      in_.Fail("corrupt partial: a sparse HyperLogLog's register count");
      return;
    }
    int64_t previous = -1;
    for (uint32_t i = 0; i < count && in_.ok(); ++i) {
      uint16_t index = 0;
      in_.Raw(&index, sizeof index);
      const uint8_t rank = in_.U8();
      if (!in_.ok()) return;
      // Ascending indices: a register given twice would be a damaged (or foreign) encoder.
      if (index <= previous || index >= HyperLogLog::kRegisters || rank == 0 ||
          rank > HyperLogLog::kMaxRank) {
        in_.Fail("corrupt partial: a HyperLogLog register index or rank out of range");
        return;
      }
      previous = index;
      bucket.visitors->RaiseRegister(index, rank);
    }
  }

  void Keys(FlatMap<KeyCount>& map) {
    const size_t count = in_.Count(24, kMaxEntries);
    for (size_t i = 0; i < count && in_.ok(); ++i) {
      const uint64_t hash = in_.U64();
      const uint64_t n = in_.U64();
      const std::string_view text = in_.String(kMaxFieldBytes);
      if (!in_.ok()) return;
      // Hash 0 marks an empty slot of a FlatMap; a real key is never 0 (NonZero).
      if (hash == 0 || n == 0 || text.empty()) {
        in_.Fail("corrupt partial: a key with hash, count or text 0");
        return;
      }
      if (!delta_.AddKeyCount(map, hash, text, n)) {
        in_.Fail("corrupt partial: a key given twice");
        return;
      }
    }
  }

  void Session() {
    const uint64_t hash = in_.U64();
    SessionDelta session;
    session.first_ms = in_.I64();
    session.last_ms = in_.I64();
    session.page_views = in_.U32();
    session.conversions = in_.U32();
    if (!in_.ok()) return;
    if (hash == 0 || !InTimeRange(session.first_ms) || !InTimeRange(session.last_ms) ||
        session.first_ms > session.last_ms) {
      in_.Fail("corrupt partial: a session's hash or times");
      return;
    }
    if (!delta_.AddSession(hash, session)) in_.Fail("corrupt partial: a session given twice");
  }

  StateReader& in_;
  ShardDelta& delta_;
};

// StateReader's own messages speak of checkpoints (its first user); a partial's errors should
// not send the reader looking for one.
std::string PartialError(const std::string& reader_error) {
  constexpr std::string_view kCheckpoint = "corrupt checkpoint: ";
  if (reader_error.starts_with(kCheckpoint)) {
    return "corrupt partial: " + reader_error.substr(kCheckpoint.size());
  }
  return reader_error;
}

}  // namespace

uint64_t SeedsFingerprint(uint64_t visitor, uint64_t session, uint64_t key) {
  const std::array<uint64_t, 3> seeds = {visitor, session, key};
  constexpr uint64_t kSeedFingerprint = 0x13198a2e03707344ull ^ 0xbe5466cf34e90c6cull;
  return HashBytes(std::string_view(reinterpret_cast<const char*>(seeds.data()), sizeof seeds),
                   kSeedFingerprint);
}

void EncodePartial(std::span<const ShardDelta* const> deltas, uint64_t seeds_fingerprint,
                   std::string* out) {
  const size_t start = out->size();
  StateWriter writer(out);
  writer.Raw(kMagic, sizeof kMagic);
  writer.U32(kPartialFormatVersion);
  writer.U64(seeds_fingerprint);
  writer.U64(deltas.size());
  for (const ShardDelta* delta : deltas) EncodeDelta(*delta, writer);
  writer.U64(StateChecksum(std::string_view(*out).substr(start)));
}

bool DecodePartial(std::string_view partial, uint64_t seeds_fingerprint, ShardDelta* scratch,
                   const std::function<void(const ShardDelta&)>& visit, std::string* error) {
  auto fail = [error](std::string message) {
    if (error != nullptr) *error = std::move(message);
    return false;
  };
  if (partial.size() < kHeaderBytes + kChecksumBytes ||
      std::memcmp(partial.data(), kMagic, sizeof kMagic) != 0) {
    return fail("not an aggregator partial (no RTAPART header)");
  }
  uint32_t version = 0;
  std::memcpy(&version, partial.data() + sizeof kMagic, sizeof version);
  if (version != kPartialFormatVersion) {
    return fail("unsupported partial format version " + std::to_string(version) +
                " (this build reads version " + std::to_string(kPartialFormatVersion) + ")");
  }
  if (partial.size() > kMaxPartialBytes) return fail("corrupt partial: larger than 1 GiB");
  const std::string_view body = partial.substr(0, partial.size() - kChecksumBytes);
  uint64_t checksum = 0;
  std::memcpy(&checksum, partial.data() + body.size(), sizeof checksum);
  if (checksum != StateChecksum(body)) {
    return fail("corrupt partial: checksum mismatch (truncated or damaged)");
  }
  uint64_t fingerprint = 0;
  std::memcpy(&fingerprint, partial.data() + sizeof kMagic + sizeof version, sizeof fingerprint);
  if (fingerprint != seeds_fingerprint) {
    return fail(
        "partial hashed with other hash seeds (another cluster, or a node without the "
        "cluster's seeds)");
  }

  StateReader in(body.substr(kHeaderBytes));
  const size_t deltas = in.Count(3 * sizeof(uint64_t), kMaxDeltas);
  for (size_t i = 0; i < deltas && in.ok(); ++i) {
    scratch->Clear();
    if (DeltaDecoder(in, *scratch).Decode()) visit(*scratch);
  }
  scratch->Clear();
  if (in.ok() && !in.AtEnd()) in.Fail("corrupt partial: trailing bytes");
  if (in.ok() && deltas == 0) in.Fail("corrupt partial: no delta");
  return in.ok() || fail(PartialError(in.error()));
}

}  // namespace rta::agg::detail
