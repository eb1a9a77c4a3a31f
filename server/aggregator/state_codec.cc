#include "server/aggregator/state_codec.h"

#include "server/aggregator/hash.h"

namespace rta::agg::detail {

uint64_t StateChecksum(std::string_view bytes) {
  // A fixed seed: the checksum must be the same in the process that reads the checkpoint.
  constexpr uint64_t kSeedChecksum = 0x452821e638d01377ull;
  return HashBytes(bytes, kSeedChecksum);
}

}  // namespace rta::agg::detail
