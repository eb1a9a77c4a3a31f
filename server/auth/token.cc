#include "server/auth/token.h"

#include <sodium.h>

#include <stdexcept>

namespace rta::auth {
namespace {

constexpr std::string_view kPrefix = "rta_";
constexpr size_t kRandomBytes = 32;
constexpr size_t kEncodedChars = 43;  // base64url of 32 bytes, no padding

void InitSodium() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot initialise");
}

}  // namespace

std::string NewToken() {
  InitSodium();
  unsigned char bytes[kRandomBytes];
  randombytes_buf(bytes, sizeof bytes);
  char encoded[sodium_base64_ENCODED_LEN(kRandomBytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(encoded, sizeof encoded, bytes, sizeof bytes,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(bytes, sizeof bytes);
  return std::string(kPrefix) + encoded;
}

TokenHash HashToken(std::string_view token) {
  TokenHash hash;
  crypto_hash_sha256(hash.data(), reinterpret_cast<const unsigned char*>(token.data()),
                     token.size());
  return hash;
}

std::string TokenIdOf(const TokenHash& hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (size_t i = 0; i < 6; ++i) {
    id += kHex[hash[i] >> 4];
    id += kHex[hash[i] & 15];
  }
  return id;
}

bool LooksLikeToken(std::string_view text) {
  if (text.size() != kPrefix.size() + kEncodedChars || !text.starts_with(kPrefix)) return false;
  for (char c : text.substr(kPrefix.size())) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace rta::auth
