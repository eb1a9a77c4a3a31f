#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "analytics.pb.h"

namespace rta::events {

// Parses one JSON Lines record into an event. Field names are EventData's (snake_case, e.g.
// {"event_type":"page_view","page":"/","visitor_id":"v1"}); unknown fields are refused so that a
// typo does not silently drop data. Only the JSON shape and types are checked here: the server
// validates the values and says what is wrong with them.
// Returns "" on success, else the reason (with the column for malformed JSON).
std::string ParseEventJson(std::string_view line, analytics::EventData* event);

// The same for a JSON value already parsed (an element of an HTTP request's array): "" or the
// reason, without a column.
std::string ParseEventObject(const nlohmann::json& document, analytics::EventData* event);

// Parses JSON text; "" or the reason (with the column, as ParseEventJson says it). Throws
// nothing: nlohmann's exceptions become the reason.
std::string ParseJsonText(std::string_view text, nlohmann::json* document);

// One event as a single JSON line (no trailing newline); empty fields are left out.
std::string EventToJson(const analytics::EventData& event);

}  // namespace rta::events
