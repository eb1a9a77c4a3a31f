#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rta::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection refused, closed, timed out)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string peer_common_name;  // HttpsRequest: the server certificate's CN
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One HTTP/1.1 request on a new connection to 127.0.0.1:port (Boost.Beast, synchronous, 10 s
// limit). `headers` are added as given (e.g. {"Content-Type", "application/json"}).
HttpAnswer HttpRequest(int port, const std::string& method, const std::string& target,
                       const std::map<std::string, std::string>& headers = {},
                       const std::string& body = "");

// The same over TLS, trusting only the CA in `ca_file` (and checking the name 127.0.0.1).
HttpAnswer HttpsRequest(int port, const std::string& ca_file, const std::string& method,
                        const std::string& target,
                        const std::map<std::string, std::string>& headers = {},
                        const std::string& body = "");

// POST /v1/events with a JSON body.
HttpAnswer PostEvents(int port, const std::string& body, const std::string& query = "",
                      const std::map<std::string, std::string>& headers = {});

}  // namespace rta::testing

namespace rta::testing {

// gRPC-Web from the client side, written from PROTOCOL-WEB.md for the tests (not the server's
// code): frames are a flag byte (0x80: trailers), a 4-byte big-endian length and the payload.
struct GrpcWebFrame {
  uint8_t flag = 0;
  std::string payload;
};
// `message` as one frame, in binary or base64 ("text").
std::string GrpcWebRequestBody(const std::string& message, bool text);
// Splits a whole response body (binary, or base64 chunks when `text`) into frames; false when
// it does not parse.
bool SplitGrpcWebFrames(const std::string& body, bool text, std::vector<GrpcWebFrame>* frames);
// "grpc-status:5\r\ngrpc-message:...\r\n" -> {"grpc-status": "5", ...}
std::map<std::string, std::string> GrpcWebTrailers(const std::string& payload);

// A server-streaming gRPC-Web call read as it arrives (chunked HTTP/1.1), binary encoding.
class GrpcWebStream {
 public:
  // receive_buffer_bytes > 0: the socket's SO_RCVBUF, set before connecting (a small one makes
  // the server's writes wait as soon as this client stops reading).
  GrpcWebStream(int port, const std::string& method, const std::string& message,
                const std::map<std::string, std::string>& headers = {},
                int receive_buffer_bytes = 0);
  ~GrpcWebStream();
  int status() const { return status_; }  // HTTP status of the answer; 0 if none
  // The next frame, waiting up to `timeout`; false at the end of the answer or on timeout.
  bool Next(GrpcWebFrame* frame, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int status_ = 0;
};

}  // namespace rta::testing
