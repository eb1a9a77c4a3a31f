// The HTTP front end's parts that need no server: origins (CORS) and the per-key rate limiter.
#include <catch2/catch.hpp>

#include "server/http/origin_policy.h"
#include "server/http/rate_limiter.h"

using rta::server::http::KeyedRateLimiter;
using rta::server::http::OriginPolicy;

TEST_CASE(
    "allowed origins (--http-allowed-origins) are exact, case-insensitive, or any, and bad entries "
    "are named",
    "[http][unit]") {
  OriginPolicy policy;
  std::string error;
  REQUIRE(OriginPolicy::Parse("https://Shop.example, http://localhost:3000", &policy, &error));
  CHECK(policy.Allows("https://shop.example"));
  CHECK(policy.Allows("http://localhost:3000"));
  CHECK_FALSE(policy.Allows("http://shop.example"));
  CHECK_FALSE(policy.Allows("https://shop.example.evil.com"));
  CHECK_FALSE(policy.Allows("null"));

  REQUIRE(OriginPolicy::Parse("", &policy, &error));
  CHECK_FALSE(policy.Allows("https://shop.example"));
  REQUIRE(OriginPolicy::Parse("*", &policy, &error));
  CHECK(policy.Allows("https://anything.example"));

  CHECK_FALSE(OriginPolicy::Parse("shop.example", nullptr, &error));
  CHECK(error == "'shop.example' must start with http:// or https://");
  CHECK_FALSE(OriginPolicy::Parse("https://shop.example/", nullptr, &error));
  CHECK(error == "'https://shop.example/' must be scheme://host[:port], without a path");
  CHECK_FALSE(OriginPolicy::Parse("https://a.example,*", nullptr, &error));
  CHECK(error == "'*' must stand alone");
}

TEST_CASE("the per-key rate limiter: a second's burst, then the rate, and a bounded table",
          "[http][unit]") {
  KeyedRateLimiter limiter(100, 3);
  int64_t retry_ms = 0;
  // A burst of one second, charged whole: the batch that empties the bucket passes.
  CHECK(limiter.Take("a", 60, 0, &retry_ms));
  CHECK(limiter.Take("a", 60, 0, &retry_ms));  // balance 40 >= 0 admits; now -20
  CHECK_FALSE(limiter.Take("a", 1, 0, &retry_ms));
  CHECK(retry_ms == 200);  // 20 events of debt at 100/s
  CHECK(limiter.Take("a", 1, 200, &retry_ms));
  // Other keys have their own buckets.
  CHECK(limiter.Take("b", 100, 0, &retry_ms));
  CHECK(limiter.Take("c", 100, 0, &retry_ms));
  CHECK(limiter.keys() == 3);
  // The table is full of keys in debt: a new one waits ...
  CHECK(limiter.Take("b", 50, 0, &retry_ms));
  CHECK(limiter.Take("c", 50, 0, &retry_ms));
  CHECK_FALSE(limiter.Take("d", 1, 10, &retry_ms));
  CHECK(retry_ms == 1000);
  CHECK(limiter.keys() == 3);
  // ... until buckets have refilled: those are dropped to make room.
  CHECK(limiter.Take("d", 1, 5'000, &retry_ms));
  CHECK(limiter.keys() == 1);
  // Unlimited stores nothing.
  KeyedRateLimiter unlimited(0, 1);
  CHECK(unlimited.Take("x", 1'000'000, 0, &retry_ms));
  CHECK(unlimited.keys() == 0);
}
