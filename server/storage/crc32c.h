#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rta::storage {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the event log's record
// framing. Debian 12 ships no libcrc32c, so it is computed here: with the SSE4.2 `crc32`
// instruction when the CPU has it (checked once at run time), else with a byte-wise table.
// Both give the same values; crc32c("123456789") == 0xE3069283. Thread-safe (pure functions).

// Extends `crc` (a finished CRC-32C of earlier bytes, 0 for none) with n more bytes, so that
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

inline uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data.data(), data.size()); }

namespace detail {
// The two implementations, for the unit test (which checks both against the check value).
uint32_t Crc32cPortableForTest(uint32_t crc, const void* data, size_t n);
// Only when Crc32cHasHardware().
uint32_t Crc32cHardwareForTest(uint32_t crc, const void* data, size_t n);
bool Crc32cHasHardware();
}  // namespace detail

}  // namespace rta::storage
