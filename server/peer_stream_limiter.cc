#include "server/peer_stream_limiter.h"

#include <functional>

namespace rta::server {

PeerStreamLimiter::Shard& PeerStreamLimiter::ShardOf(std::string_view address) {
  return shards_[std::hash<std::string_view>()(address) % kShards];
}

bool PeerStreamLimiter::TryAcquire(std::string_view address) {
  Shard& shard = ShardOf(address);
  std::lock_guard lock(shard.mutex);
  auto [it, inserted] = shard.open.try_emplace(std::string(address), 0);
  if (it->second >= limit_) return false;
  ++it->second;
  return true;
}

void PeerStreamLimiter::Release(std::string_view address) {
  Shard& shard = ShardOf(address);
  std::lock_guard lock(shard.mutex);
  auto it = shard.open.find(std::string(address));
  if (it == shard.open.end()) return;
  if (--it->second == 0) shard.open.erase(it);
}

uint32_t PeerStreamLimiter::OpenForTest(std::string_view address) {
  Shard& shard = ShardOf(address);
  std::lock_guard lock(shard.mutex);
  auto it = shard.open.find(std::string(address));
  return it == shard.open.end() ? 0 : it->second;
}

}  // namespace rta::server
