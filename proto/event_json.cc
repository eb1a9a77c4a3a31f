#include "proto/event_json.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace rta::events {
namespace {

using nlohmann::json;

using StringSetter = void (analytics::EventData::*)(const std::string&);

struct StringField {
  std::string_view name;
  StringSetter set;
  const std::string& (analytics::EventData::*get)() const;
};

constexpr StringField kStringFields[] = {
    {"event_id", &analytics::EventData::set_event_id, &analytics::EventData::event_id},
    {"event_type", &analytics::EventData::set_event_type, &analytics::EventData::event_type},
    {"session_id", &analytics::EventData::set_session_id, &analytics::EventData::session_id},
    {"visitor_id", &analytics::EventData::set_visitor_id, &analytics::EventData::visitor_id},
    {"page", &analytics::EventData::set_page, &analytics::EventData::page},
    {"referrer", &analytics::EventData::set_referrer, &analytics::EventData::referrer},
    {"utm_source", &analytics::EventData::set_utm_source, &analytics::EventData::utm_source},
    {"utm_campaign", &analytics::EventData::set_utm_campaign, &analytics::EventData::utm_campaign},
    {"country", &analytics::EventData::set_country, &analytics::EventData::country},
    {"device", &analytics::EventData::set_device, &analytics::EventData::device},
};

std::string TypeName(const json& value) { return value.type_name(); }

// Reads one member into the event; "" or the reason it cannot be used.
std::string ReadField(const std::string& key, const json& value, analytics::EventData* event) {
  for (const StringField& field : kStringFields) {
    if (key != field.name) continue;
    if (value.is_null()) return "";
    if (!value.is_string()) return key + ": expected a string, got " + TypeName(value);
    (event->*field.set)(value.get<std::string>());
    return "";
  }
  if (key == "timestamp_ms") {
    if (value.is_null()) return "";
    if (!value.is_number_integer() && !value.is_number_unsigned()) {
      return "timestamp_ms: expected an integer (Unix milliseconds), got " + TypeName(value);
    }
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return "timestamp_ms: out of range";
    }
    event->set_timestamp_ms(value.get<int64_t>());
    return "";
  }
  if (key == "value") {
    if (value.is_null()) return "";
    if (!value.is_number()) return "value: expected a number, got " + TypeName(value);
    event->set_value(value.get<double>());
    return "";
  }
  if (key == "properties") {
    if (value.is_null()) return "";
    if (!value.is_object()) return "properties: expected an object, got " + TypeName(value);
    auto& properties = *event->mutable_properties();
    for (const auto& [name, property] : value.items()) {
      if (!property.is_string()) {
        return "properties." + name + ": expected a string, got " + TypeName(property);
      }
      properties[name] = property.get<std::string>();
    }
    return "";
  }
  return "unknown field \"" + key + "\"";
}

}  // namespace

std::string ParseJsonText(std::string_view text, json* document) {
  try {
    *document = json::parse(text);
  } catch (const json::parse_error& error) {
    // what() reads "[json.exception.parse_error.101] parse error at line 1, column 5: <reason>";
    // keep the column and the reason, the line number is the caller's.
    std::string reason = error.what();
    if (const size_t colon = reason.find(": "); colon != std::string::npos) {
      reason = reason.substr(colon + 2);
    }
    return "invalid JSON at column " + std::to_string(error.byte) + ": " + reason;
  } catch (const json::exception& error) {
    // Well-formed but unrepresentable, e.g. out_of_range.406 for a number beyond a double
    // ("1e999"); what() reads "[json.exception.out_of_range.406] number overflow parsing ...".
    std::string reason = error.what();
    if (const size_t bracket = reason.find("] "); bracket != std::string::npos) {
      reason = reason.substr(bracket + 2);
    }
    return "invalid JSON: " + reason;
  }
  return "";
}

std::string ParseEventObject(const json& document, analytics::EventData* event) {
  event->Clear();
  if (!document.is_object()) return "expected a JSON object, got " + TypeName(document);
  for (const auto& [key, value] : document.items()) {
    if (std::string error = ReadField(key, value, event); !error.empty()) return error;
  }
  if (event->event_type().empty()) return "event_type: required";
  return "";
}

std::string ParseEventJson(std::string_view line, analytics::EventData* event) {
  event->Clear();
  json document;
  if (std::string error = ParseJsonText(line, &document); !error.empty()) return error;
  return ParseEventObject(document, event);
}

std::string EventToJson(const analytics::EventData& event) {
  json document = json::object();
  for (const StringField& field : kStringFields) {
    const std::string& value = (event.*field.get)();
    if (!value.empty()) document[std::string(field.name)] = value;
  }
  if (event.timestamp_ms() != 0) document["timestamp_ms"] = event.timestamp_ms();
  if (event.value() != 0) document["value"] = event.value();
  if (!event.properties().empty()) {
    json& properties = document["properties"];
    for (const auto& [name, value] : event.properties()) properties[name] = value;
  }
  // Invalid UTF-8 in a field is replaced rather than aborting the whole output.
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace rta::events
