// The HTTP front end's parts that need no server: origins (CORS) and the per-key rate limiter.
#include <catch2/catch.hpp>

#include "server/http/grpc_web.h"
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

TEST_CASE("gRPC-Web frames: messages and trailers byte by byte, binary and base64",
          "[http][unit][grpc-web]") {
  using rta::server::http::GrpcWebEncoding;
  namespace web = rta::server::http;
  CHECK(web::GrpcWebDataFrame("abc", GrpcWebEncoding::kBinary) == std::string("\0\0\0\0\3abc", 8));
  CHECK(web::GrpcWebDataFrame("abc", GrpcWebEncoding::kText) == "AAAAAANhYmM=");
  CHECK(web::GrpcWebTrailerFrame(grpc::Status::OK, GrpcWebEncoding::kBinary) ==
        std::string("\x80\0\0\0\x0fgrpc-status:0\r\n", 20));
  CHECK(web::GrpcWebTrailerFrame({grpc::StatusCode::NOT_FOUND, "no 100% \xe2\x9c\x93"},
                                 GrpcWebEncoding::kBinary)
            .substr(5) == "grpc-status:5\r\ngrpc-message:no 100%25 %E2%9C%93\r\n");

  GrpcWebEncoding encoding;
  CHECK(web::IsGrpcWeb("application/grpc-web+proto", &encoding));
  CHECK(encoding == GrpcWebEncoding::kBinary);
  CHECK(web::IsGrpcWeb("application/grpc-web-text; charset=utf-8", &encoding));
  CHECK(encoding == GrpcWebEncoding::kText);
  CHECK_FALSE(web::IsGrpcWeb("application/grpc", &encoding));
  CHECK_FALSE(web::IsGrpcWeb("application/json", &encoding));

  std::string message;
  auto read = [&](const std::string& body, GrpcWebEncoding as = GrpcWebEncoding::kBinary) {
    return web::ReadGrpcWebRequest(body, as, 16, &message);
  };
  REQUIRE(read(std::string("\0\0\0\0\3abc", 8)).ok());
  CHECK(message == "abc");
  REQUIRE(read("AAAAAANhYmM=", GrpcWebEncoding::kText).ok());
  CHECK(message == "abc");
  // Two message frames, base64 back to back: a unary or server-streaming request has one.
  CHECK(read("AAAAAAFh"
             "AAAAAAFi",
             GrpcWebEncoding::kText)
            .error_message() ==
        "grpc-web: more than one message for a unary or server-streaming method");
  CHECK(read("not base64!", GrpcWebEncoding::kText).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  const grpc::Status trailers = read(std::string("\x80\0\0\0\0", 5));
  CHECK(trailers.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(trailers.error_message() ==
        "grpc-web: a request carries no trailers (a frame with flag 0x80)");
  CHECK(read(std::string("\x01\0\0\0\0", 5)).error_code() == grpc::StatusCode::UNIMPLEMENTED);
  const grpc::Status big = read(std::string("\0\0\0\0\x11", 5) + std::string(17, 'x'));
  CHECK(big.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(big.error_message() == "grpc-web: message of 17 bytes, limit 16 (--max-message-bytes)");
  CHECK(read(std::string("\0\0\0\0\5ab", 7)).error_message() ==
        "grpc-web: a frame of 5 bytes with 2 left in the body");
  CHECK(read(std::string("\0\0", 2)).error_message() ==
        "grpc-web: a frame header needs 5 bytes, 2 left");
  CHECK(read("").error_message() == "grpc-web: the body holds no message frame");
}
