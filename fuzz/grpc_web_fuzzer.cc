// Fuzz target: what the HTTP port reads from a gRPC-Web call's body (server/http/grpc_web) and
// the origin list it is configured with (server/http/origin_policy) — the bytes anyone who
// reaches the port controls.
//
// Input: a selector byte (bit 0: binary or text encoding; the rest: the message size limit, 1 to
// 8,129 bytes), then the body. ReadGrpcWebRequest must return a status that names the problem
// or a message within the limit, never crash; a message it reads, framed again, reads back the
// same. The same bytes as a grpc-message come out printable ASCII, and as an origin list either
// parse (each listed origin then allowed) or name why not.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "server/http/grpc_web.h"
#include "server/http/origin_policy.h"

using rta::server::http::GrpcWebDataFrame;
using rta::server::http::GrpcWebEncoding;
using rta::server::http::OriginPolicy;
using rta::server::http::PercentEncodeGrpcMessage;
using rta::server::http::ReadGrpcWebRequest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const GrpcWebEncoding encoding =
      (data[0] & 1) != 0 ? GrpcWebEncoding::kText : GrpcWebEncoding::kBinary;
  const size_t limit = 1 + static_cast<size_t>(data[0] >> 1) * 64;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::string message;
  const grpc::Status status = ReadGrpcWebRequest(body, encoding, limit, &message);
  if (status.ok()) {
    RTA_FUZZ_CHECK(message.size() <= limit);
    std::string again;
    RTA_FUZZ_CHECK(
        ReadGrpcWebRequest(GrpcWebDataFrame(message, encoding), encoding, limit, &again).ok());
    RTA_FUZZ_CHECK(again == message);
  } else {
    RTA_FUZZ_CHECK(!status.error_message().empty());
  }

  for (const char c : PercentEncodeGrpcMessage(body)) RTA_FUZZ_CHECK(c >= 0x20 && c <= 0x7e);

  OriginPolicy policy;
  std::string error;
  if (OriginPolicy::Parse(body, &policy, &error)) {
    // Every entry of an accepted list is allowed as the browser would send it.
    size_t start = 0;
    while (start <= body.size() && !policy.any()) {
      size_t comma = body.find(',', start);
      if (comma == std::string_view::npos) comma = body.size();
      std::string_view entry = body.substr(start, comma - start);
      while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
      while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
      if (!entry.empty()) RTA_FUZZ_CHECK(policy.Allows(entry));
      start = comma + 1;
    }
  } else {
    RTA_FUZZ_CHECK(!error.empty());
  }
  return 0;
}
