#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace rta::server::http {

// gRPC-Web framing (grpc/grpc PROTOCOL-WEB.md), so that a browser can call the service on the
// HTTP port: the body is a sequence of frames, each a flag byte, a 4-byte big-endian length and
// that many bytes; flag 0x00 carries a message, 0x80 the trailers (`grpc-status:0\r\n...` as
// HTTP/1 header lines). `application/grpc-web-text` is the same bytes in base64, each frame
// encoded on its own (the spec allows concatenated padded chunks, which a stream needs).
// Pure functions, no I/O: the HTTP session calls them and the tests check them byte by byte.
enum class GrpcWebEncoding { kBinary, kText };

// Whether `content_type` is gRPC-Web ("application/grpc-web", "+proto", "-text", "-text+proto",
// parameters ignored), and which encoding.
bool IsGrpcWeb(std::string_view content_type, GrpcWebEncoding* encoding);
// The content type the answer carries for that encoding.
const char* GrpcWebContentType(GrpcWebEncoding encoding);

// A unary or server-streaming request body: exactly one uncompressed message frame, at most
// max_message_bytes. OK and *message, or the status to answer with, naming what is wrong
// (INVALID_ARGUMENT for bad framing or base64, trailers in a request, several messages;
// UNIMPLEMENTED for a compressed frame; RESOURCE_EXHAUSTED for an oversized message).
grpc::Status ReadGrpcWebRequest(std::string_view body, GrpcWebEncoding encoding,
                                size_t max_message_bytes, std::string* message);

// One message frame, and the trailer frame that ends every answer.
std::string GrpcWebDataFrame(std::string_view message, GrpcWebEncoding encoding);
std::string GrpcWebTrailerFrame(const grpc::Status& status, GrpcWebEncoding encoding);

// grpc-message is percent-encoded (PROTOCOL-HTTP2.md): bytes outside 0x20-0x7E, and '%'.
std::string PercentEncodeGrpcMessage(std::string_view message);

}  // namespace rta::server::http
