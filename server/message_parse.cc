#include "server/message_parse.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <map>
#include <vector>

namespace rta::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormat;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr int kMaxDepth = 16;

const char* WireTypeName(int wire_type) {
  switch (wire_type) {
    case WireFormatLite::WIRETYPE_VARINT:
      return "varint";
    case WireFormatLite::WIRETYPE_FIXED64:
      return "64-bit";
    case WireFormatLite::WIRETYPE_LENGTH_DELIMITED:
      return "length-delimited";
    case WireFormatLite::WIRETYPE_START_GROUP:
      return "group start";
    case WireFormatLite::WIRETYPE_END_GROUP:
      return "group end";
    case WireFormatLite::WIRETYPE_FIXED32:
      return "32-bit";
  }
  return "invalid";
}

// Walks one message's fields up to the stream's current limit; returns "" when it finds nothing
// wrong, otherwise the description of the first fault, prefixed by the path to it.
std::string DescribeMessage(CodedInputStream& in, const Descriptor& descriptor, int depth,
                            const std::string& path) {
  std::map<int, int> seen;  // field number -> occurrences so far, for positions in repeated fields
  while (in.BytesUntilLimit() > 0) {
    const int offset = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    const std::string at = "byte " + std::to_string(offset) + ": ";
    if (tag == 0 || WireFormatLite::GetTagFieldNumber(tag) == 0) {
      return path + at + "invalid field tag (broken wire format)";
    }
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const int wire_type = WireFormatLite::GetTagWireType(tag);
    const FieldDescriptor* field = descriptor.FindFieldByNumber(number);
    if (field == nullptr) {
      if (!WireFormatLite::SkipField(&in, tag)) {
        return path + at + "unknown field number " + std::to_string(number) + " (" +
               WireTypeName(wire_type) + "): its value runs past the end of the message";
      }
      continue;
    }
    std::string name = path + "field '" + field->name() + "'";
    const int index = seen[number]++;
    if (field->is_repeated()) name += " #" + std::to_string(index);
    const int expected = WireFormat::WireTypeForFieldType(field->type());
    const bool packed =
        field->is_packable() && wire_type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (wire_type != expected && !packed) {
      // Protobuf keeps such a value as an unknown field rather than failing; so do we.
      if (!WireFormatLite::SkipField(&in, tag)) {
        return name + ": " + at + "wire type " + WireTypeName(wire_type) + " (expected " +
               WireTypeName(expected) + "), and its value runs past the end of the message";
      }
      continue;
    }
    if (wire_type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag)) {
        return name + ": " + at + "its value runs past the end of the message";
      }
      continue;
    }
    uint32_t length = 0;
    if (!in.ReadVarint32(&length) || static_cast<int64_t>(length) > in.BytesUntilLimit()) {
      return name + ": " + at + "its length runs past the end of the message (truncated?)";
    }
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      std::string value;
      in.ReadString(&value, static_cast<int>(length));
      if (!IsValidUtf8(value)) return name + ": not valid UTF-8";
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE && depth < kMaxDepth) {
      const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
      std::string inner = DescribeMessage(in, *field->message_type(), depth + 1, name + " > ");
      if (!inner.empty()) return inner;
      in.PopLimit(limit);
    } else {
      in.Skip(static_cast<int>(length));
    }
  }
  return "";
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t extra;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, code = c & 0x07;
    } else {
      return false;  // a continuation byte first, or 0xF8..0xFF
    }
    if (static_cast<size_t>(end - p) <= extra) return false;
    for (size_t i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMinForLength[4] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinForLength[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    p += extra + 1;
  }
  return true;
}

std::string DescribeParseFailure(std::string_view bytes, const Descriptor& descriptor) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  in.PushLimit(static_cast<int>(bytes.size()));
  std::string why = DescribeMessage(in, descriptor, 0, "");
  return why.empty() ? "not a valid " + descriptor.name() + " (protobuf refused it)" : why;
}

bool ParseRequestMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message,
                         std::string* scratch, std::string* why) {
  // ProtoBufferReader reads the slices in place (no copy) and leaves the buffer as it was.
  grpc::ByteBuffer view(buffer);  // shares the slices; ProtoBufferReader wants a mutable one
  {
    grpc::ProtoBufferReader reader(&view);
    if (message->ParseFromZeroCopyStream(&reader)) return true;
  }
  std::vector<grpc::Slice> slices;
  scratch->clear();
  if (buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      scratch->append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  *why = DescribeParseFailure(*scratch, *message->GetDescriptor());
  return false;
}

}  // namespace rta::server
