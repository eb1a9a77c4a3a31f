#include "server/storage/rollup_delta.h"

#include "server/aggregator/state_codec.h"
#include "server/storage/rollup_accumulator.h"

namespace rta::storage {
namespace {

// A segment key is at most two values of kRollupMaxValueBytes and a few bytes of framing.
constexpr uint64_t kMaxSegmentBytes = 4 * kRollupMaxValueBytes;
// A cell is at most a dense 2^14-register sketch, the counters and the quantile bins.
constexpr uint64_t kMaxCellBytes = 1 << 20;
// A session's state: four varints and the names of its first event's values.
constexpr uint64_t kMaxSessionStateBytes =
    4 * 10 + kRollupDimensionCount * (10 + kRollupMaxValueBytes);

void AppendTag(RollupStateEntry::Kind kind, agg::detail::StateWriter& writer) {
  writer.U8(static_cast<uint8_t>(kind));
}

}  // namespace

void AppendRollupWrite(const RollupWrite& write, std::string* out) {
  agg::detail::StateWriter writer(out);
  writer.U8(static_cast<uint8_t>(write.resolution));
  writer.VarI64(write.time_s);
  writer.VarU64(write.segment.size());
  writer.Raw(write.segment.data(), write.segment.size());
  const std::string cell = write.cell.Encode();
  writer.VarU64(cell.size());
  writer.Raw(cell.data(), cell.size());
}

void AppendRollupValueAdmitted(size_t dimension, std::string_view value, std::string* out) {
  agg::detail::StateWriter writer(out);
  AppendTag(RollupStateEntry::Kind::kValueAdmitted, writer);
  writer.U8(static_cast<uint8_t>(dimension));
  writer.VarU64(value.size());
  writer.Raw(value.data(), value.size());
}

void AppendRollupSessionForgotten(uint64_t session_hash, std::string* out) {
  agg::detail::StateWriter writer(out);
  AppendTag(RollupStateEntry::Kind::kSessionForgotten, writer);
  writer.U64(session_hash);
}

void AppendRollupSessionState(uint64_t session_hash, std::string_view state, std::string* out) {
  agg::detail::StateWriter writer(out);
  AppendTag(RollupStateEntry::Kind::kSessionState, writer);
  writer.U64(session_hash);
  writer.VarU64(state.size());
  writer.Raw(state.data(), state.size());
}

bool DecodeRollupRun(std::string_view bytes, RollupRun* out, std::string* error) {
  agg::detail::StateReader reader(bytes);
  for (size_t index = 0; !reader.AtEnd(); ++index) {
    auto fail = [&](const std::string& what) {
      *error = "rollup delta entry " + std::to_string(index) + ": " + what;
      return false;
    };
    const uint8_t tag = reader.U8();
    if (!reader.ok()) return fail(reader.error());
    if (tag >= static_cast<uint8_t>(RollupStateEntry::Kind::kValueAdmitted)) {
      RollupStateEntry entry;
      entry.kind = static_cast<RollupStateEntry::Kind>(tag);
      switch (entry.kind) {
        case RollupStateEntry::Kind::kValueAdmitted: {
          entry.dimension = reader.U8();
          const uint64_t size = reader.VarU64();
          if (reader.ok() && entry.dimension >= kRollupDimensionCount) {
            return fail("an admitted value of unknown dimension " +
                        std::to_string(entry.dimension));
          }
          if (reader.ok() && (size == 0 || size > kRollupMaxValueBytes)) {
            return fail("an admitted value of " + std::to_string(size) + " bytes");
          }
          entry.bytes = reader.Bytes(static_cast<size_t>(size));
          break;
        }
        case RollupStateEntry::Kind::kSessionForgotten:
          entry.session_hash = reader.U64();
          break;
        case RollupStateEntry::Kind::kSessionState: {
          entry.session_hash = reader.U64();
          const uint64_t size = reader.VarU64();
          if (reader.ok() && size > kMaxSessionStateBytes) {
            return fail("a session state of " + std::to_string(size) + " bytes");
          }
          entry.bytes = reader.Bytes(static_cast<size_t>(size));
          break;
        }
        default:
          return fail("unknown entry tag " + std::to_string(tag));
      }
      if (!reader.ok()) return fail(reader.error());
      out->state.push_back(std::move(entry));
      continue;
    }
    const uint8_t resolution = tag;
    const int64_t time_s = reader.VarI64();
    const uint64_t segment_bytes = reader.VarU64();
    if (!reader.ok()) return fail(reader.error());
    if (resolution >= kResolutionCount) {
      return fail("unknown resolution " + std::to_string(resolution));
    }
    if (segment_bytes > kMaxSegmentBytes) {
      return fail("a segment of " + std::to_string(segment_bytes) + " bytes");
    }
    const std::string_view segment = reader.Bytes(static_cast<size_t>(segment_bytes));
    const uint64_t cell_bytes = reader.VarU64();
    if (reader.ok() && cell_bytes > kMaxCellBytes) {
      return fail("a cell of " + std::to_string(cell_bytes) + " bytes");
    }
    const std::string_view cell = reader.Bytes(static_cast<size_t>(cell_bytes));
    if (!reader.ok()) return fail(reader.error());
    if (segment.find('\0') != std::string_view::npos) {
      return fail("a segment with a NUL byte (the store's key separator)");
    }
    RollupWrite write{static_cast<Resolution>(resolution), time_s, std::string(segment), {}};
    std::string why;
    if (!RollupCell::Decode(cell, &write.cell, &why)) return fail(why);
    out->writes.push_back(std::move(write));
  }
  return true;
}

}  // namespace rta::storage
