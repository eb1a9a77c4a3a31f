#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/storage/event_log.h"

namespace rta::storage::testing {

// splitmix64 of `n`: uniformly mixed bits, as a HyperLogLog's hash must have (a visitor's).
inline uint64_t MixedHash(uint64_t n) {
  uint64_t z = n + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Waits for WhenDurable(lsn) with a deadline: 1 = fired true, 0 = fired false, -1 = timeout.
int WaitDurable(EventLog& log, Lsn lsn, std::chrono::milliseconds timeout);

// Every record from `from` on; on failure *why is set and the records read so far returned.
std::vector<std::pair<Lsn, std::string>> ReadAll(EventLog& log, Lsn from, std::string* why);

// The segment files in dir, sorted by name (full paths).
std::vector<std::string> SegmentFiles(const std::string& dir);

uint64_t FileSize(const std::string& path);
void FlipByte(const std::string& path, uint64_t offset);
void TruncateFile(const std::string& path, uint64_t size);
void AppendZeros(const std::string& path, uint64_t count);

// A payload of `size` bytes that names its writer and sequence number.
std::string MakeRecord(int writer, int seq, size_t size);

}  // namespace rta::storage::testing
