#include "server/storage/crc32c.h"

#include <array>
#include <cstring>

namespace rta::storage {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // Castagnoli, bit-reversed

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

// `state` is the running (inverted) register, not a finished CRC.
uint32_t PortableUpdate(uint32_t state, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) state = kTable[(state ^ p[i]) & 0xFF] ^ (state >> 8);
  return state;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t HardwareUpdate(uint32_t state,
                                                          const unsigned char* p, size_t n) {
  uint64_t s = state;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // unaligned-safe; x86 is little-endian as the CRC expects
    s = __builtin_ia32_crc32di(s, word);
    p += 8;
    n -= 8;
  }
  auto s32 = static_cast<uint32_t>(s);
  while (n > 0) {
    s32 = __builtin_ia32_crc32qi(s32, *p);
    ++p;
    --n;
  }
  return s32;
}

bool DetectHardware() { return __builtin_cpu_supports("sse4.2"); }
#else
uint32_t HardwareUpdate(uint32_t state, const unsigned char* p, size_t n) {
  return PortableUpdate(state, p, n);
}
bool DetectHardware() { return false; }
#endif

const bool kHasHardware = DetectHardware();

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t state = ~crc;
  state = kHasHardware ? HardwareUpdate(state, p, n) : PortableUpdate(state, p, n);
  return ~state;
}

namespace detail {
uint32_t Crc32cPortableForTest(uint32_t crc, const void* data, size_t n) {
  return ~PortableUpdate(~crc, static_cast<const unsigned char*>(data), n);
}
uint32_t Crc32cHardwareForTest(uint32_t crc, const void* data, size_t n) {
  return ~HardwareUpdate(~crc, static_cast<const unsigned char*>(data), n);
}
bool Crc32cHasHardware() { return kHasHardware; }
}  // namespace detail

}  // namespace rta::storage
