#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace rta::auth {

// API tokens: "rta_" and 43 base64url characters (32 random bytes from libsodium's CSPRNG).
// The server keeps only a token's SHA-256: 256 random bits need no salt or slow hash (nothing
// to guess from the hash), and a hash lookup keeps the per-call check at one SHA-256 of 47 bytes
// and one map find. The token's public id, used to list and revoke it, is the first 12 hex
// digits of the hash: naming a token never reveals it.
using TokenHash = std::array<uint8_t, 32>;

std::string NewToken();
TokenHash HashToken(std::string_view token);
std::string TokenIdOf(const TokenHash& hash);
// Whether `text` has a token's shape (prefix, length, alphabet); a cheap first check.
bool LooksLikeToken(std::string_view text);

}  // namespace rta::auth
