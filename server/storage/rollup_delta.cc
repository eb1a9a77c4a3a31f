#include "server/storage/rollup_delta.h"

#include "server/aggregator/state_codec.h"

namespace rta::storage {
namespace {

// A segment key is at most two values of kRollupMaxValueBytes and a few bytes of framing.
constexpr uint64_t kMaxSegmentBytes = 4 * kRollupMaxValueBytes;
// A cell is at most a dense 2^14-register sketch, the counters and the quantile bins.
constexpr uint64_t kMaxCellBytes = 1 << 20;

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

bool DecodeRollupWrites(std::string_view bytes, std::vector<RollupWrite>* out, std::string* error) {
  agg::detail::StateReader reader(bytes);
  for (size_t index = 0; !reader.AtEnd(); ++index) {
    auto fail = [&](const std::string& what) {
      *error = "rollup delta write " + std::to_string(index) + ": " + what;
      return false;
    };
    const uint8_t resolution = reader.U8();
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
    out->push_back(std::move(write));
  }
  return true;
}

}  // namespace rta::storage
