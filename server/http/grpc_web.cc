#include "server/http/grpc_web.h"

#include <sodium.h>

#include <cctype>

namespace rta::server::http {
namespace {

constexpr uint8_t kTrailerFlag = 0x80;
constexpr uint8_t kCompressedFlag = 0x01;
constexpr size_t kFrameHeader = 5;

std::string Frame(uint8_t flag, std::string_view payload) {
  std::string out;
  out.reserve(kFrameHeader + payload.size());
  out.push_back(static_cast<char>(flag));
  const uint32_t size = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((size >> shift) & 0xff));
  out.append(payload);
  return out;
}

std::string Base64(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL sodium writes
  return out;
}

// Decodes concatenated padded base64 chunks (a client may send the frames encoded one by one).
bool DecodeBase64Chunks(std::string_view text, std::string* out) {
  out->clear();
  while (!text.empty()) {
    // A chunk ends after its padding, or at the end.
    size_t end = text.find('=');
    if (end == std::string_view::npos) {
      end = text.size();
    } else {
      while (end < text.size() && text[end] == '=') ++end;
    }
    const std::string_view chunk = text.substr(0, end);
    text.remove_prefix(end);
    const size_t start = out->size();
    out->resize(start + chunk.size() / 4 * 3 + 3);
    size_t written = 0;
    const char* chunk_end = nullptr;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out->data() + start),
                          out->size() - start, chunk.data(), chunk.size(), nullptr, &written,
                          &chunk_end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        chunk_end != chunk.data() + chunk.size()) {
      return false;
    }
    out->resize(start + written);
  }
  return true;
}

}  // namespace

bool IsGrpcWeb(std::string_view content_type, GrpcWebEncoding* encoding) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (type == "application/grpc-web" || type == "application/grpc-web+proto") {
    *encoding = GrpcWebEncoding::kBinary;
    return true;
  }
  if (type == "application/grpc-web-text" || type == "application/grpc-web-text+proto") {
    *encoding = GrpcWebEncoding::kText;
    return true;
  }
  return false;
}

const char* GrpcWebContentType(GrpcWebEncoding encoding) {
  return encoding == GrpcWebEncoding::kText ? "application/grpc-web-text+proto"
                                            : "application/grpc-web+proto";
}

grpc::Status ReadGrpcWebRequest(std::string_view body, GrpcWebEncoding encoding,
                                size_t max_message_bytes, std::string* message) {
  std::string decoded;
  if (encoding == GrpcWebEncoding::kText) {
    if (!DecodeBase64Chunks(body, &decoded)) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "grpc-web-text: the body is not base64 (RFC 4648, padded)"};
    }
    body = decoded;
  }
  bool have_message = false;
  while (!body.empty()) {
    if (body.size() < kFrameHeader) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "grpc-web: a frame header needs 5 bytes, " + std::to_string(body.size()) + " left"};
    }
    const uint8_t flag = static_cast<uint8_t>(body[0]);
    uint32_t size = 0;
    for (int i = 1; i <= 4; ++i) size = (size << 8) | static_cast<uint8_t>(body[i]);
    if (flag & kTrailerFlag) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "grpc-web: a request carries no trailers (a frame with flag 0x80)"};
    }
    if (flag & kCompressedFlag) {
      return {grpc::StatusCode::UNIMPLEMENTED,
              "grpc-web: compressed messages are not accepted (send them uncompressed)"};
    }
    if (flag != 0) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "grpc-web: unknown frame flag " + std::to_string(flag)};
    }
    if (size > max_message_bytes) {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED,
              "grpc-web: message of " + std::to_string(size) + " bytes, limit " +
                  std::to_string(max_message_bytes) + " (--max-message-bytes)"};
    }
    if (body.size() - kFrameHeader < size) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "grpc-web: a frame of " + std::to_string(size) + " bytes with " +
                  std::to_string(body.size() - kFrameHeader) + " left in the body"};
    }
    if (have_message) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "grpc-web: more than one message for a unary or server-streaming method"};
    }
    message->assign(body.substr(kFrameHeader, size));
    have_message = true;
    body.remove_prefix(kFrameHeader + size);
  }
  if (!have_message) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "grpc-web: the body holds no message frame"};
  }
  return grpc::Status::OK;
}

std::string GrpcWebDataFrame(std::string_view message, GrpcWebEncoding encoding) {
  std::string frame = Frame(0, message);
  return encoding == GrpcWebEncoding::kText ? Base64(frame) : frame;
}

std::string PercentEncodeGrpcMessage(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string GrpcWebTrailerFrame(const grpc::Status& status, GrpcWebEncoding encoding) {
  std::string trailers =
      "grpc-status:" + std::to_string(static_cast<int>(status.error_code())) + "\r\n";
  if (!status.error_message().empty()) {
    trailers += "grpc-message:" + PercentEncodeGrpcMessage(status.error_message()) + "\r\n";
  }
  std::string frame = Frame(kTrailerFlag, trailers);
  return encoding == GrpcWebEncoding::kText ? Base64(frame) : frame;
}

}  // namespace rta::server::http
