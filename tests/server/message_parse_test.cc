#include "server/message_parse.h"

#include <catch2/catch.hpp>

#include "analytics.pb.h"

namespace {

using rta::server::DescribeParseFailure;
using rta::server::IsValidUtf8;
using rta::server::ParseRequestMessage;

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

TEST_CASE("UTF-8 validation follows the standard's rules", "[server][parse]") {
  CHECK(IsValidUtf8(""));
  CHECK(IsValidUtf8("plain ascii"));
  CHECK(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  CHECK_FALSE(IsValidUtf8("\xC3"));                                 // truncated
  CHECK_FALSE(IsValidUtf8("\xC3\x28"));                             // bad continuation
  CHECK_FALSE(IsValidUtf8("\x80"));                                 // continuation first
  CHECK_FALSE(IsValidUtf8("\xC0\xAF"));                             // overlong '/'
  CHECK_FALSE(IsValidUtf8("\xE0\x80\xAF"));                         // overlong, 3 bytes
  CHECK_FALSE(IsValidUtf8("\xED\xA0\x80"));                         // a surrogate
  CHECK_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));                     // past U+10FFFF
  CHECK_FALSE(IsValidUtf8("\xFF"));
}

TEST_CASE("a valid message parses from a buffer of several slices", "[server][parse]") {
  analytics::EventBatch batch;
  for (int i = 0; i < 3; ++i) {
    auto* event = batch.add_events();
    event->set_event_id("id-" + std::to_string(i));
    event->set_page(std::string(300, 'p'));
  }
  const std::string bytes = batch.SerializeAsString();
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += 100) slices.emplace_back(bytes.substr(at, 100));
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  analytics::EventBatch parsed;
  std::string scratch, why;
  REQUIRE(ParseRequestMessage(buffer, &parsed, &scratch, &why));
  CHECK(parsed.events_size() == 3);
  CHECK(parsed.events(2).event_id() == "id-2");
  CHECK(why.empty());
}

TEST_CASE("a message that does not parse is described: the field and the fault",
          "[server][parse]") {
  analytics::EventData event;
  event.set_event_id("e1");
  event.set_page("/ok");
  std::string scratch, why;
  analytics::EventData parsed;

  SECTION("invalid UTF-8 in a string field") {
    std::string bytes = event.SerializeAsString();
    bytes[bytes.find("/ok") + 1] = '\xC3';
    CHECK_FALSE(ParseRequestMessage(Buffer(bytes), &parsed, &scratch, &why));
    CHECK(why == "field 'page': not valid UTF-8");
  }
  SECTION("inside a repeated message, with its position") {
    analytics::EventBatch batch;
    *batch.add_events() = event;
    *batch.add_events() = event;
    batch.mutable_events(1)->set_visitor_id("v\xFF");
    analytics::EventBatch parsed_batch;
    CHECK_FALSE(ParseRequestMessage(Buffer(batch.SerializePartialAsString()), &parsed_batch,
                                    &scratch, &why));
    CHECK(why == "field 'events' #1 > field 'visitor_id': not valid UTF-8");
  }
  SECTION("a truncated message") {
    std::string bytes = event.SerializeAsString();
    bytes.pop_back();
    CHECK_FALSE(ParseRequestMessage(Buffer(bytes), &parsed, &scratch, &why));
    CHECK_THAT(why, Catch::Contains("field 'page': byte "));
    CHECK_THAT(why, Catch::Contains("runs past the end of the message"));
  }
  SECTION("a wire type that does not match its field is skipped, as protobuf does") {
    // Field 1 (event_id, a string) sent as a varint, then `page` with invalid UTF-8.
    std::string bytes("\x08\x05", 2);
    bytes += std::string("\x32\x02/\xC3", 4);  // field 6, length 2
    REQUIRE(analytics::EventData::descriptor()->FindFieldByNumber(6)->name() == "page");
    CHECK_FALSE(ParseRequestMessage(Buffer(bytes), &parsed, &scratch, &why));
    CHECK(why == "field 'page': not valid UTF-8");
    CHECK(ParseRequestMessage(Buffer(bytes.substr(0, 2)), &parsed, &scratch, &why));
  }
  SECTION("garbage") {
    const std::string bytes("\x00\x00\x00", 3);
    CHECK_FALSE(ParseRequestMessage(Buffer(bytes), &parsed, &scratch, &why));
    CHECK_THAT(why, Catch::Contains("invalid field tag"));
  }
  SECTION("unknown fields are skipped, as protobuf does") {
    std::string bytes = event.SerializeAsString();
    bytes += std::string("\xF8\x07\x01", 3);  // field 127, varint 1
    CHECK(ParseRequestMessage(Buffer(bytes), &parsed, &scratch, &why));
    CHECK(DescribeParseFailure(bytes, *analytics::EventData::descriptor()) ==
          "not a valid EventData (protobuf refused it)");
  }
}
