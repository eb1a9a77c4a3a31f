#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "server/aggregator/shard_delta.h"

// The byte format of cluster partials (Aggregator::TakePartial / MergePartial, issue 16): what
// the shard deltas of a partition's owner added since its last partial, for every node to fold
// into its windows with the same WindowedState::Merge a single node uses for its own shards.
//
// Layout (state_codec.h helpers: little-endian, fixed width):
//   "RTAPART\n", U32 version, U64 fingerprint of the hash seeds, U64 delta count,
//   per delta: U64 bucket count, the buckets, U64 session count, the sessions (U64 hash, I64
//     first_ms, I64 last_ms, U32 page_views, U32 conversions), U64 ingest count, the ingest
//     counts (I64 second, U64 count);
//   per bucket: I64 time key code, the BucketCounters (U64 events, page_views, conversions,
//     F64 revenue, U64 x kSignalCount signals, U64 x kRankedCount ranked_totals), U8 flags
//     (1: visitors, 2: page loads), the HyperLogLog (U8 form; 0: U32 count and (U16 index,
//     U8 rank) for each non-zero register in ascending index; 1: the 16 KiB of registers,
//     whichever is smaller), the quantile sketch (QuantileSketch::Save), then the kRankedCount
//     ranked and kDimensionCount dimension maps (U64 count; U64 hash, U64 count, String text);
//   U64 checksum (StateChecksum) of everything before it.
//
// The seeds' fingerprint is there because every hash in a partial (visitors' HLL registers,
// session and key hashes) only means something to a node hashing with the same seeds; a node
// of another cluster, or one started without the shared seeds, would merge noise silently.
//
// Why StateChecksum and not the log's crc32c (server/storage): the aggregator library may not
// depend on storage (storage depends on it), and the checkpoint's 64-bit wyhash-style checksum
// is already here, fast (GB/s), and misses a damaged partial with probability 2^-64.
//
// Decoding trusts nothing: the checksum first, then every count against what is left and a
// bound, every index and value against its range (time key kinds, register indices and ranks,
// quantile bins, text lengths, zero or repeated hashes), so that a damaged or foreign partial is
// refused with a message and never reaches the windows.
namespace rta::agg::detail {

inline constexpr uint32_t kPartialFormatVersion = 1;

// A digest of the three hash seeds, for partials to name the hashing they were made with.
uint64_t SeedsFingerprint(uint64_t visitor, uint64_t session, uint64_t key);

// Appends the partial of `deltas` (non-empty deltas; their live-segment sub-deltas are left
// out) to `*out`. The deltas are only read.
void EncodePartial(std::span<const ShardDelta* const> deltas, uint64_t seeds_fingerprint,
                   std::string* out);

// Decodes `partial` delta by delta into `*scratch` (cleared before each, and at the end) and
// calls visit(*scratch) for each. Returns false with *error set at the first damage found; the
// deltas visited before that were valid, so a caller that must apply all or nothing decodes
// twice: once with a visitor that does nothing, then with the one that applies. Decoding the
// same bytes again takes the same path, so the second pass cannot fail.
bool DecodePartial(std::string_view partial, uint64_t seeds_fingerprint, ShardDelta* scratch,
                   const std::function<void(const ShardDelta&)>& visit, std::string* error);

}  // namespace rta::agg::detail
