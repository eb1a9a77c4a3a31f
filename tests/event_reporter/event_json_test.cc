// event_json: JSON Lines into EventData and back; every refusal says why.
#include "proto/event_json.h"

#include <catch2/catch.hpp>

using rta::events::EventToJson;
using rta::events::ParseEventJson;

TEST_CASE("JSON lines become events, and bad lines say why", "[reporter][json]") {
  analytics::EventData event;
  SECTION("every field") {
    REQUIRE(ParseEventJson(R"({"event_id":"e1","event_type":"purchase","timestamp_ms":1764000000000,
        "session_id":"s","visitor_id":"v","page":"/p","referrer":"r.com","utm_source":"g",
        "utm_campaign":"c","country":"DE","device":"mobile","value":12.5,
        "properties":{"k":"v"}})",
                           &event) == "");
    CHECK(event.event_id() == "e1");
    CHECK(event.timestamp_ms() == 1764000000000);
    CHECK(event.value() == 12.5);
    CHECK(event.country() == "DE");
    CHECK(event.properties().at("k") == "v");
    analytics::EventData again;
    REQUIRE(ParseEventJson(EventToJson(event), &again) == "");
    CHECK(again.SerializeAsString() == event.SerializeAsString());
  }
  SECTION("malformed JSON names the column") {
    const std::string error = ParseEventJson(R"({"event_type": page_view})", &event);
    CHECK_THAT(error, Catch::StartsWith("invalid JSON at column 16"));
  }
  SECTION("a number beyond a double is refused, not thrown") {
    // Found by fuzz/event_json_fuzzer: json::out_of_range escaped and ended the process.
    CHECK(ParseEventJson(R"({"event_type":"click","value":1e999})", &event) ==
          "invalid JSON: number overflow parsing '1e999'");
    CHECK(ParseEventJson("9225e807", &event) == "invalid JSON: number overflow parsing '9225e807'");
  }
  SECTION("a typo in a field name is refused, not dropped") {
    CHECK(ParseEventJson(R"({"event_type":"click","vistor_id":"v"})", &event) ==
          "unknown field \"vistor_id\"");
  }
  SECTION("wrong types") {
    CHECK(ParseEventJson(R"({"event_type":"click","timestamp_ms":"today"})", &event) ==
          "timestamp_ms: expected an integer (Unix milliseconds), got string");
    CHECK(ParseEventJson(R"({"event_type":"click","value":"1"})", &event) ==
          "value: expected a number, got string");
    CHECK(ParseEventJson(R"({"event_type":3})", &event) ==
          "event_type: expected a string, got number");
    CHECK(ParseEventJson(R"([1,2])", &event) == "expected a JSON object, got array");
  }
  SECTION("event_type is required") {
    CHECK(ParseEventJson(R"({"page":"/"})", &event) == "event_type: required");
  }
}
