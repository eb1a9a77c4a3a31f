#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rta::server {

// Counts the streams each client address has open, so that one client cannot take every stream
// the server allows (max_streams) and lock the others out. A peer is its IP address without the
// port: one host opening many connections is still one peer. (Once tokens exist, the same
// mechanism takes the token as the key.)
//
// Memory is bounded by the streams open: an address's entry is erased when its last stream
// closes. Thread-safe: calls start and end on every completion-queue thread; the map is split
// into shards by a hash of the address so that they rarely contend on one mutex, and each
// acquire or release is one short critical section (no allocation while the address already has
// an entry).
class PeerStreamLimiter {
 public:
  explicit PeerStreamLimiter(uint32_t max_streams_per_peer) : limit_(max_streams_per_peer) {}

  // Counts one more stream for `address`; false (and nothing counted) when it already has
  // max_streams_per_peer open.
  bool TryAcquire(std::string_view address);
  void Release(std::string_view address);

  uint32_t limit() const { return limit_; }
  uint32_t OpenForTest(std::string_view address);

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, uint32_t> open;  // guarded by mutex
  };
  Shard& ShardOf(std::string_view address);

  const uint32_t limit_;
  Shard shards_[kShards];
};

}  // namespace rta::server
