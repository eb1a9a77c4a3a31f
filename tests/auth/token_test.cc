#include "server/auth/token.h"

#include <catch2/catch.hpp>
#include <set>

namespace rta::auth {
namespace {

TEST_CASE("tokens are random, well formed, and named by their hash", "[auth]") {
  std::set<std::string> tokens, ids;
  for (int i = 0; i < 1000; ++i) {
    const std::string token = NewToken();
    REQUIRE(LooksLikeToken(token));
    tokens.insert(token);
    ids.insert(TokenIdOf(HashToken(token)));
  }
  CHECK(tokens.size() == 1000);
  CHECK(ids.size() == 1000);
  const std::string token = NewToken();
  CHECK(HashToken(token) == HashToken(token));
  CHECK(TokenIdOf(HashToken(token)).size() == 12);
  CHECK(TokenIdOf(HashToken(token)).find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK_FALSE(LooksLikeToken(""));
  CHECK_FALSE(LooksLikeToken(token.substr(1)));
  CHECK_FALSE(LooksLikeToken("xyz_" + token.substr(4)));
  std::string bad = token;
  bad.back() = '!';
  CHECK_FALSE(LooksLikeToken(bad));
}

TEST_CASE("the token hash is SHA-256", "[auth]") {
  // FIPS 180-2 test vector "abc".
  const TokenHash hash = HashToken("abc");
  CHECK(TokenIdOf(hash) == "ba7816bf8f01");
}

}  // namespace
}  // namespace rta::auth
