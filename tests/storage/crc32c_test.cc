#include "server/storage/crc32c.h"

#include <cstdint>
#include <random>
#include <string>

#include <catch2/catch.hpp>

namespace rta::storage {
namespace {

TEST_CASE("crc32c matches the standard check value", "[storage][crc32c]") {
  const std::string check = "123456789";
  CHECK(Crc32c(check) == 0xE3069283u);
  CHECK(detail::Crc32cPortableForTest(0, check.data(), check.size()) == 0xE3069283u);
  if (detail::Crc32cHasHardware()) {
    CHECK(detail::Crc32cHardwareForTest(0, check.data(), check.size()) == 0xE3069283u);
  }
  CHECK(Crc32c("") == 0u);
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros.
  CHECK(Crc32c(std::string(32, '\0')) == 0x8A9136AAu);
}

TEST_CASE("crc32c hardware and table agree, and extending equals one pass", "[storage][crc32c]") {
  std::mt19937 rng(42);
  std::string data(5000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 1000u, 4999u, 5000u}) {
    for (size_t start : {0u, 1u, 3u}) {
      if (start + len > data.size()) continue;
      const char* p = data.data() + start;
      const uint32_t portable = detail::Crc32cPortableForTest(0, p, len);
      if (detail::Crc32cHasHardware()) {
        CHECK(detail::Crc32cHardwareForTest(0, p, len) == portable);
      }
      CHECK(Crc32cExtend(0, p, len) == portable);
      const size_t half = len / 2;
      CHECK(Crc32cExtend(Crc32cExtend(0, p, half), p + half, len - half) == portable);
    }
  }
}

}  // namespace
}  // namespace rta::storage
