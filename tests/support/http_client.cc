#include "tests/support/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cstring>
#include <functional>

namespace rta::testing {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

// Sends `request` on `stream` and reads the answer, asynchronously on `io` so that the 10 s
// deadline of the lowest layer applies (a tcp_stream bounds asynchronous operations only).
template <class Stream>
HttpAnswer Exchange(boost::asio::io_context& io, Stream& stream,
                    bhttp::request<bhttp::string_body>& request) {
  HttpAnswer answer;
  beast::error_code ec;
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 << 20);
  bhttp::async_write(stream, request, [&](beast::error_code write_ec, size_t) {
    ec = write_ec;
    if (!ec) {
      bhttp::async_read(stream, buffer, parser,
                        [&](beast::error_code read_ec, size_t) { ec = read_ec; });
    }
  });
  io.run();
  if (ec) return answer;
  const auto& response = parser.get();
  answer.status = static_cast<int>(response.result_int());
  for (const auto& field : response) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    answer.headers[name] = std::string(field.value());
  }
  answer.body = response.body();
  return answer;
}

bhttp::request<bhttp::string_body> MakeRequest(int port, const std::string& method,
                                               const std::string& target,
                                               const std::map<std::string, std::string>& headers,
                                               const std::string& body) {
  bhttp::request<bhttp::string_body> request(bhttp::string_to_verb(method), target, 11);
  request.set(bhttp::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  return request;
}

tcp::endpoint Loopback(int port) {
  return {boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)};
}

}  // namespace

HttpAnswer HttpRequest(int port, const std::string& method, const std::string& target,
                       const std::map<std::string, std::string>& headers, const std::string& body) {
  boost::asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(Loopback(port), ec);
  if (ec) return {};
  auto request = MakeRequest(port, method, target, headers, body);
  HttpAnswer answer = Exchange(io, stream, request);
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return answer;
}

HttpAnswer HttpsRequest(int port, const std::string& ca_file, const std::string& method,
                        const std::string& target,
                        const std::map<std::string, std::string>& headers,
                        const std::string& body) {
  boost::asio::io_context io;
  boost::asio::ssl::context tls(boost::asio::ssl::context::tls_client);
  beast::error_code ec;
  tls.load_verify_file(ca_file, ec);
  if (ec) return {};
  tls.set_verify_mode(boost::asio::ssl::verify_peer);
  tls.set_verify_callback(boost::asio::ssl::host_name_verification("127.0.0.1"));
  beast::ssl_stream<beast::tcp_stream> stream(io, tls);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(stream).connect(Loopback(port), ec);
  if (ec) return {};
  stream.async_handshake(boost::asio::ssl::stream_base::client,
                         [&ec](beast::error_code handshake_ec) { ec = handshake_ec; });
  io.run();
  if (ec) return {};
  io.restart();
  std::string common_name;
  if (X509* certificate = SSL_get_peer_certificate(stream.native_handle())) {
    char name[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, name,
                              sizeof name);
    common_name = name;
    X509_free(certificate);
  }
  auto request = MakeRequest(port, method, target, headers, body);
  HttpAnswer answer = Exchange(io, stream, request);
  answer.peer_common_name = common_name;
  return answer;
}

HttpAnswer PostEvents(int port, const std::string& body, const std::string& query,
                      const std::map<std::string, std::string>& headers) {
  std::map<std::string, std::string> all = {{"Content-Type", "application/json"}};
  for (const auto& [name, value] : headers) all[name] = value;
  return HttpRequest(port, "POST", "/v1/events" + query, all, body);
}

}  // namespace rta::testing

namespace rta::testing {
namespace {

// RFC 4648 base64, written here on its own so that the test does not check the server's
// encoding against itself.
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string EncodeBase64(const std::string& bytes) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n =
        (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(n >> s) & 63]);
  }
  if (i + 1 == bytes.size()) {
    const uint32_t n = uint8_t(bytes[i]) << 16;
    out += std::string{kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += std::string{kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63],
                       kAlphabet[(n >> 6) & 63], '='};
  }
  return out;
}

// `text`: a multiple of 4 characters of the alphabet (the caller replaced the padding).
bool DecodeBase64(const std::string& text, std::string* out) {
  out->clear();
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const char* at = c == '\0' ? nullptr : std::strchr(kAlphabet, c);
    if (at == nullptr) return false;
    bits = (bits << 6) | static_cast<uint32_t>(at - kAlphabet);
    if (++count == 4) {
      out->push_back(static_cast<char>((bits >> 16) & 0xff));
      out->push_back(static_cast<char>((bits >> 8) & 0xff));
      out->push_back(static_cast<char>(bits & 0xff));
      bits = 0;
      count = 0;
    }
  }
  return count == 0;
}

// Splits binary frames off the front of `data`; leaves an incomplete one in place.
void TakeFrames(std::string* data, std::vector<GrpcWebFrame>* frames) {
  while (data->size() >= 5) {
    const uint32_t size = (uint8_t((*data)[1]) << 24) | (uint8_t((*data)[2]) << 16) |
                          (uint8_t((*data)[3]) << 8) | uint8_t((*data)[4]);
    if (data->size() < 5 + size) return;
    frames->push_back({static_cast<uint8_t>((*data)[0]), data->substr(5, size)});
    data->erase(0, 5 + size);
  }
}

}  // namespace

std::string GrpcWebRequestBody(const std::string& message, bool text) {
  std::string frame(1, '\0');
  const uint32_t size = static_cast<uint32_t>(message.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    frame.push_back(static_cast<char>((size >> shift) & 0xff));
  frame += message;
  return text ? EncodeBase64(frame) : frame;
}

bool SplitGrpcWebFrames(const std::string& body, bool text, std::vector<GrpcWebFrame>* frames) {
  std::string data;
  if (text) {
    // Each frame is its own padded chunk: decode chunk by chunk.
    size_t start = 0;
    while (start < body.size()) {
      size_t end = body.find('=', start);
      end = end == std::string::npos ? body.size() : end;
      while (end < body.size() && body[end] == '=') ++end;
      std::string chunk = body.substr(start, end - start);
      start = end;
      const size_t pad = chunk.size() - chunk.find_last_not_of('=') - 1;
      std::string padded = chunk.substr(0, chunk.size() - pad);
      for (size_t i = 0; i < pad; ++i) padded += 'A';
      std::string decoded;
      if (padded.size() % 4 != 0 || !DecodeBase64(padded, &decoded)) return false;
      decoded.resize(decoded.size() - pad);
      data += decoded;
    }
  } else {
    data = body;
  }
  TakeFrames(&data, frames);
  return data.empty();
}

std::map<std::string, std::string> GrpcWebTrailers(const std::string& payload) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < payload.size()) {
    size_t end = payload.find("\r\n", start);
    if (end == std::string::npos) end = payload.size();
    const std::string line = payload.substr(start, end - start);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) out[line.substr(0, colon)] = line.substr(colon + 1);
    start = end + 2;
  }
  return out;
}

struct GrpcWebStream::Impl {
  boost::asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::empty_body> parser;
  std::string data;  // chunk bytes not yet split into frames
  std::vector<GrpcWebFrame> frames;
  bool ended = false;
  std::function<std::size_t(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk;
};

GrpcWebStream::GrpcWebStream(int port, const std::string& method, const std::string& message,
                             const std::map<std::string, std::string>& headers,
                             int receive_buffer_bytes)
    : impl_(std::make_unique<Impl>()) {
  beast::error_code ec;
  if (receive_buffer_bytes > 0) {
    impl_->stream.socket().open(tcp::v4(), ec);
    if (!ec) {
      impl_->stream.socket().set_option(
          boost::asio::socket_base::receive_buffer_size(receive_buffer_bytes), ec);
    }
    if (ec) return;
  }
  impl_->stream.expires_after(std::chrono::seconds(10));
  impl_->stream.connect(
      tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
      ec);
  if (ec) return;
  bhttp::request<bhttp::string_body> request(bhttp::verb::post,
                                             "/analytics.AnalyticsService/" + method, 11);
  request.set(bhttp::field::host, "127.0.0.1:" + std::to_string(port));
  request.set(bhttp::field::content_type, "application/grpc-web+proto");
  request.set("X-Grpc-Web", "1");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = GrpcWebRequestBody(message, false);
  request.prepare_payload();
  bhttp::write(impl_->stream, request, ec);
  if (ec) return;
  impl_->parser.body_limit(boost::none);
  // Beast keeps a reference to the callback: it lives in Impl, as long as the parser.
  impl_->on_chunk = [impl = impl_.get()](std::uint64_t, beast::string_view body,
                                         beast::error_code&) -> std::size_t {
    impl->data.append(body.data(), body.size());
    return body.size();
  };
  impl_->parser.on_chunk_body(impl_->on_chunk);
  impl_->stream.expires_after(std::chrono::seconds(10));
  bhttp::async_read_header(impl_->stream, impl_->buffer, impl_->parser,
                           [&ec](beast::error_code read_ec, size_t) { ec = read_ec; });
  impl_->io.restart();
  impl_->io.run();
  if (ec) return;
  status_ = static_cast<int>(impl_->parser.get().result_int());
}

GrpcWebStream::~GrpcWebStream() {
  beast::error_code ignored;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

bool GrpcWebStream::Next(GrpcWebFrame* frame, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->frames.empty()) {
    TakeFrames(&impl_->data, &impl_->frames);
    if (!impl_->frames.empty()) break;
    if (impl_->ended || status_ == 0 || std::chrono::steady_clock::now() >= deadline) return false;
    beast::error_code ec;
    impl_->stream.expires_at(deadline);  // bounds the asynchronous read below
    bhttp::async_read_some(impl_->stream, impl_->buffer, impl_->parser,
                           [&ec](beast::error_code read_ec, size_t) { ec = read_ec; });
    impl_->io.restart();
    impl_->io.run();
    if (ec || impl_->parser.is_done()) {
      TakeFrames(&impl_->data, &impl_->frames);
      impl_->ended = true;
      if (impl_->frames.empty()) return false;
    }
  }
  *frame = std::move(impl_->frames.front());
  impl_->frames.erase(impl_->frames.begin());
  return true;
}

}  // namespace rta::testing
