// event_json: JSON Lines into EventData and back; every refusal says why.
#include "proto/event_json.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

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

TEST_CASE("an HTTP body reads as one event or an array of them, each element on its own",
          "[reporter][json]") {
  using rta::events::ParsedEvents;
  using rta::events::ParseEventsJson;
  analytics::EventBatch batch;
  SECTION("one object is one event") {
    const ParsedEvents parsed =
        ParseEventsJson(R"({"event_id":"a","event_type":"click","value":-3})", 10, &batch);
    REQUIRE(parsed.error.empty());
    REQUIRE(parsed.count == 1);
    REQUIRE(batch.events_size() == 1);
    CHECK(parsed.unreadable == std::vector<std::string>{""});
    CHECK(batch.events(0).event_id() == "a");
    CHECK(batch.events(0).value() == -3);
  }
  SECTION("an array keeps each element at its position, with its own reason") {
    const ParsedEvents parsed = ParseEventsJson(
        R"([{"event_id":"ok","event_type":"page_view","timestamp_ms":1764000000000,
             "properties":{"plan":"pro"}},
            {"event_id":"bad","event_type":"click","value":"12","page":"/p"},
            7,
            [1,{"event_type":"click"}],
            {"event_id":"typo","vistor_id":"v","event_type":"click","country":{"a":[1,2]}},
            {"event_id":"prop","event_type":"click","properties":{"k":["v"],"j":"w"}},
            {"event_id":"none","page":"/"},
            {"event_id":"last","event_type":"signup"}])",
        100, &batch);
    REQUIRE(parsed.error.empty());
    REQUIRE(parsed.count == 8);
    REQUIRE(batch.events_size() == 8);
    CHECK(parsed.unreadable == std::vector<std::string>{
                                   "",
                                   "value: expected a number, got string",
                                   "expected a JSON object, got number",
                                   "expected a JSON object, got array",
                                   "unknown field \"vistor_id\"",
                                   "properties.k: expected a string, got array",
                                   "event_type: required",
                                   "",
                               });
    CHECK(batch.events(0).timestamp_ms() == 1764000000000);
    CHECK(batch.events(0).properties().at("plan") == "pro");
    // What could be read of an unreadable element is kept, fields after the bad one too.
    CHECK(batch.events(1).event_id() == "bad");
    CHECK(batch.events(1).page() == "/p");
    CHECK(batch.events(4).event_type() == "click");
    CHECK(batch.events(5).properties().at("j") == "w");
    // Nothing of a skipped container leaks into the next element.
    CHECK(batch.events(7).event_id() == "last");
    CHECK(batch.events(7).country().empty());
  }
  SECTION("past the limit elements are counted, not stored") {
    const ParsedEvents parsed = ParseEventsJson(
        R"([{"event_type":"a"},{"event_type":"b"},{"event_type":"c"},4,[5]])", 2, &batch);
    REQUIRE(parsed.error.empty());
    CHECK(parsed.count == 5);
    CHECK(batch.events_size() == 2);
    CHECK(parsed.unreadable.size() == 2);
  }
  SECTION("a body that is neither, or not JSON, is refused whole") {
    ParsedEvents parsed = ParseEventsJson("\"click\"", 10, &batch);
    CHECK(parsed.error == "expected an event object or an array of them, got string");
    CHECK_FALSE(parsed.invalid_json);
    parsed = ParseEventsJson(R"([{"event_type":"click"},{"event_type": click}])", 10, &batch);
    CHECK(parsed.invalid_json);
    CHECK_THAT(parsed.error, Catch::StartsWith("invalid JSON at column 40: "));
    // A shape error does not hide that the text is not JSON.
    parsed = ParseEventsJson("42 x", 10, &batch);
    CHECK(parsed.invalid_json);
    parsed = ParseEventsJson(R"([{"event_type":"click","value":1e999}])", 10, &batch);
    CHECK(parsed.error == "invalid JSON: number overflow parsing '1e999'");
    parsed = ParseEventsJson("", 10, &batch);
    CHECK(parsed.invalid_json);
  }
  SECTION("one line and a one-element array read alike") {
    const std::string line =
        R"({"event_id":"e","event_type":"purchase","timestamp_ms":9223372036854775808})";
    analytics::EventData event;
    const std::string reason = ParseEventJson(line, &event);
    CHECK(reason == "timestamp_ms: out of range");
    const ParsedEvents parsed = ParseEventsJson("[" + line + "]", 10, &batch);
    REQUIRE(parsed.unreadable.size() == 1);
    CHECK(parsed.unreadable[0] == reason);
    CHECK(batch.events(0).SerializeAsString() == event.SerializeAsString());
  }
}

TEST_CASE("simdjson in front reads every text as nlohmann alone does", "[reporter][json]") {
  using rta::events::ParsedEvents;
  const std::string deep = std::string(2000, '[') + std::string(2000, ']');
  const std::vector<std::string> texts = {
      R"({"event_type":"click","timestamp_ms":-0})",    // an integer to both
      R"({"event_type":"click","timestamp_ms":-0.0})",  // a double, refused
      R"({"event_type":"click","value":-0.0})",
      R"({"event_type":"click","value":18446744073709551616})",  // beyond 64 bits: a double
      R"({"event_type":"click","timestamp_ms":18446744073709551615})",
      R"({"event_type":"click","value":-9223372036854775809})",
      "\xEF\xBB\xBF{\"event_type\":\"click\"}",             // a byte order mark
      R"({"event_type":"click","event_type":"purchase"})",  // the last one wins
      R"({"event_type":"a\u0000b","page":"\ud83d\ude00"})",
      R"({"event_type":"\ud800"})",     // a lone surrogate
      "{\"event_type\":\"\xC3\x28\"}",  // not UTF-8
      R"([{"event_type":"click"}] [])",
      "[" + deep + "]",  // deeper than simdjson's 1024
      R"({"event_type":"click","value":1.5e-400,"properties":{"a":"b","a":"c"}})",
  };
  for (const std::string& text : texts) {
    CAPTURE(text);
    analytics::EventBatch fast, reference;
    const ParsedEvents got = rta::events::ParseEventsJson(text, 10, &fast);
    const ParsedEvents expected =
        rta::events::ParseEventsJsonWithNlohmannOnly(text, 10, &reference);
    CHECK(got.error == expected.error);
    CHECK(got.invalid_json == expected.invalid_json);
    CHECK(got.count == expected.count);
    CHECK(got.unreadable == expected.unreadable);
    CHECK(fast.SerializeAsString() == reference.SerializeAsString());
  }
  analytics::EventData event;
  CHECK(ParseEventJson(R"({"event_type":"click","timestamp_ms":-0})", &event).empty());
  CHECK(ParseEventJson(R"({"event_type":"click","timestamp_ms":-0.0})", &event) ==
        "timestamp_ms: expected an integer (Unix milliseconds), got number");
  CHECK(ParseEventJson("\xEF\xBB\xBF{\"event_type\":\"click\"}", &event).empty());
}
