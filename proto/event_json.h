#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "analytics.pb.h"

namespace rta::events {

// Parses one JSON Lines record into an event. Field names are EventData's (snake_case, e.g.
// {"event_type":"page_view","page":"/","visitor_id":"v1"}); unknown fields are refused so that a
// typo does not silently drop data. Only the JSON shape and types are checked here: the server
// validates the values and says what is wrong with them.
// Returns "" on success, else the reason (with the column for malformed JSON). Throws nothing.
std::string ParseEventJson(std::string_view line, analytics::EventData* event);

// What ParseEventsJson read of a body.
struct ParsedEvents {
  std::string error;          // "" or why the body as a whole cannot be used
  bool invalid_json = false;  // `error` says the text is not JSON at all
  size_t count = 0;           // the body's events (1 for an object), counted past the limit too
  std::vector<std::string> unreadable;  // per stored event: "" or why it cannot be used
};

// Parses a body that is one event object or an array of them (HTTP POST /v1/events) into
// `batch`, each element at its position, by the same rules and with the same reasons as
// ParseEventJson. An element that cannot be used keeps the fields that could be read (so that
// its event_id can name it) and its first reason in document order. At most `max_events` are
// stored; the rest are only counted, not turned into events. When `error` is set, what `batch`
// holds is not to be used. Throws nothing.
//
// Both parse with simdjson, and read again with nlohmann's parser any text simdjson refuses;
// the answer is always the one nlohmann's parser alone gives (event_json.cc, ReadEvents).
ParsedEvents ParseEventsJson(std::string_view text, size_t max_events,
                             analytics::EventBatch* batch);

// ParseEventsJson without simdjson in front: nlohmann alone, whose answer ParseEventsJson must
// always give. For fuzz/event_json_fuzzer.cc, which checks that the two agree.
ParsedEvents ParseEventsJsonWithNlohmannOnly(std::string_view text, size_t max_events,
                                             analytics::EventBatch* batch);

// One event as a single JSON line (no trailing newline); empty fields are left out.
std::string EventToJson(const analytics::EventData& event);

}  // namespace rta::events
