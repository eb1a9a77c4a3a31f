#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <string_view>

namespace rta::server {

// Parses a request message from the bytes gRPC received. The ingest methods take their messages
// raw (as ByteBuffer) rather than typed because a typed read that fails to parse completes like
// the client's half-close (ok == false), so a stream with one undecodable message would end "OK"
// with that message silently missing. Here a failure is told apart, and described.
//
// `scratch` is reused between calls (kept by the call) and holds a copy of the bytes only when a
// message fails to parse. Returns false with `why` set when the bytes are not a valid message.
bool ParseRequestMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message,
                         std::string* scratch, std::string* why);

// Says in words why `bytes` is not a valid message of type `descriptor`: the field (by name and,
// inside repeated messages, position) and the fault: a string that is not UTF-8, a wire type
// that does not match the field, a length or value running past the end, an invalid tag.
// Protobuf's own parser reports only true/false. Nested messages are examined to a bounded depth.
std::string DescribeParseFailure(std::string_view bytes,
                                 const google::protobuf::Descriptor& descriptor);

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing past
// U+10FFFF), the rule protobuf applies to proto3 `string` fields.
bool IsValidUtf8(std::string_view text);

}  // namespace rta::server
