#include "proto/event_json.h"

#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace rta::events {
namespace {

using nlohmann::json;

struct StringField {
  std::string_view name;
  std::string* (analytics::EventData::*mutable_value)();
  const std::string& (analytics::EventData::*get)() const;
};

constexpr StringField kStringFields[] = {
    {"event_id", &analytics::EventData::mutable_event_id, &analytics::EventData::event_id},
    {"event_type", &analytics::EventData::mutable_event_type, &analytics::EventData::event_type},
    {"session_id", &analytics::EventData::mutable_session_id, &analytics::EventData::session_id},
    {"visitor_id", &analytics::EventData::mutable_visitor_id, &analytics::EventData::visitor_id},
    {"page", &analytics::EventData::mutable_page, &analytics::EventData::page},
    {"referrer", &analytics::EventData::mutable_referrer, &analytics::EventData::referrer},
    {"utm_source", &analytics::EventData::mutable_utm_source, &analytics::EventData::utm_source},
    {"utm_campaign", &analytics::EventData::mutable_utm_campaign,
     &analytics::EventData::utm_campaign},
    {"country", &analytics::EventData::mutable_country, &analytics::EventData::country},
    {"device", &analytics::EventData::mutable_device, &analytics::EventData::device},
};

// The rules that turn JSON values into events, as callbacks in document order: nlohmann's SAX
// interface, which SimdjsonWalk below drives too, so that both parsers read by one set of rules
// (see ReadEvents). Each string is copied once, into its event.
//
// What a value is for depends on where it sits: the body itself, an element of the body's
// array, a member of an event, or a member of an event's "properties". A container that is not
// read (a wrong type, an unknown field, an event past the limit) is skipped whole. One event
// keeps its first reason; the JSON text's own error replaces everything, as the text is then
// not read at all.
class EventsSax {
 public:
  // `single`: the text must be one event object, read into it. Otherwise an object or an array
  // of them, appended to `batch` (at most `max_events`).
  EventsSax(analytics::EventData* single, analytics::EventBatch* batch, size_t max_events,
            ParsedEvents* out)
      : single_(single), batch_(batch), max_events_(max_events), out_(out) {}

  // nlohmann's SAX interface; true = go on.
  bool null() {
    if (skipping_ > 0) return true;
    if (level_ == Level::kMembers && member_ != Member::kUnknown) return true;  // "not set"
    return Wrong("null");
  }
  bool boolean(bool) { return skipping_ > 0 || Wrong("boolean"); }
  bool number_integer(json::number_integer_t number) {  // negative integers
    if (skipping_ > 0) return true;
    if (level_ == Level::kMembers && member_ == Member::kTimestamp) {
      event_->set_timestamp_ms(number);
      return true;
    }
    if (level_ == Level::kMembers && member_ == Member::kValue) {
      event_->set_value(static_cast<double>(number));
      return true;
    }
    return Wrong("number");
  }
  bool number_unsigned(json::number_unsigned_t number) {
    if (skipping_ > 0) return true;
    if (level_ == Level::kMembers && member_ == Member::kTimestamp) {
      if (number > static_cast<uint64_t>(INT64_MAX)) return Fail("timestamp_ms: out of range");
      event_->set_timestamp_ms(static_cast<int64_t>(number));
      return true;
    }
    if (level_ == Level::kMembers && member_ == Member::kValue) {
      event_->set_value(static_cast<double>(number));
      return true;
    }
    return Wrong("number");
  }
  bool number_float(json::number_float_t number, const json::string_t& /*text*/) {
    return Float(number);
  }
  bool Float(double number) {
    if (skipping_ > 0) return true;
    if (level_ == Level::kMembers && member_ == Member::kValue) {
      event_->set_value(number);
      return true;
    }
    return Wrong("number");
  }
  bool string(json::string_t& value) { return String(value); }
  bool String(std::string_view value) {
    if (skipping_ > 0) return true;
    if (level_ == Level::kMembers && member_ == Member::kString) {
      (event_->*string_field_->mutable_value)()->assign(value);
      return true;
    }
    if (level_ == Level::kProperties) {
      (*event_->mutable_properties())[property_name_].assign(value);
      return true;
    }
    return Wrong("string");
  }
  bool binary(json::binary_t&) { return skipping_ > 0 || Wrong("binary"); }  // not in JSON text

  bool start_object(std::size_t) {
    if (skipping_ > 0) return Skip();
    switch (level_) {
      case Level::kBody:
      case Level::kElements:
        return BeginEvent();
      case Level::kMembers:
        if (member_ != Member::kProperties) return Wrong("object") && Skip();
        level_ = Level::kProperties;
        return true;
      case Level::kProperties:
        return Wrong("object") && Skip();
    }
    return true;
  }
  bool end_object() {
    if (skipping_ > 0) return Unskip();
    if (level_ == Level::kProperties) {
      level_ = Level::kMembers;
      return true;
    }
    if (event_->event_type().empty()) Fail("event_type: required");
    level_ = body_is_array_ ? Level::kElements : Level::kBody;
    return true;
  }
  bool start_array(std::size_t) {
    if (skipping_ > 0) return Skip();
    if (level_ == Level::kBody && single_ == nullptr) {
      level_ = Level::kElements;
      body_is_array_ = true;
      return true;
    }
    return Wrong("array") && Skip();
  }
  bool end_array() {
    if (skipping_ > 0) return Unskip();
    level_ = Level::kBody;  // the body's array
    return true;
  }
  bool key(json::string_t& name) { return Key(name); }
  bool Key(std::string_view name) {
    if (skipping_ > 0) return true;
    if (level_ == Level::kProperties) {
      property_name_.assign(name);
      return true;
    }
    string_field_ = nullptr;
    for (const StringField& field : kStringFields) {
      if (name == field.name) {
        string_field_ = &field;
        member_ = Member::kString;
        return true;
      }
    }
    if (name == "timestamp_ms") {
      member_ = Member::kTimestamp;
    } else if (name == "value") {
      member_ = Member::kValue;
    } else if (name == "properties") {
      member_ = Member::kProperties;
    } else {
      member_ = Member::kUnknown;
      unknown_name_.assign(name);
    }
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) {
    out_->invalid_json = true;
    std::string reason = error.what();
    if (const auto* parse = dynamic_cast<const json::parse_error*>(&error)) {
      // "[json.exception.parse_error.101] parse error at line 1, column 5: <reason>": keep the
      // column and the reason; a line number is the caller's.
      if (const size_t colon = reason.find(": "); colon != std::string::npos) {
        reason = reason.substr(colon + 2);
      }
      out_->error = "invalid JSON at column " + std::to_string(parse->byte) + ": " + reason;
    } else {
      // Well-formed but unrepresentable: out_of_range.406 for a number beyond a double
      // ("1e999"), "[json.exception.out_of_range.406] number overflow parsing ...".
      if (const size_t bracket = reason.find("] "); bracket != std::string::npos) {
        reason = reason.substr(bracket + 2);
      }
      out_->error = "invalid JSON: " + reason;
    }
    return false;
  }

 private:
  // Where the next value goes.
  enum class Level { kBody, kElements, kMembers, kProperties };
  // What the current member of an event is.
  enum class Member { kString, kTimestamp, kValue, kProperties, kUnknown };

  // The next element: its event, or nullptr past the limit (then it is only counted).
  analytics::EventData* NextEvent() {
    ++out_->count;
    if (single_ != nullptr) {
      out_->unreadable.emplace_back();
      return single_;
    }
    if (out_->count > max_events_) return nullptr;
    out_->unreadable.emplace_back();
    return batch_->add_events();
  }
  bool BeginEvent() {
    event_ = NextEvent();
    if (event_ == nullptr) return Skip();
    level_ = Level::kMembers;
    return true;
  }
  // The current event cannot be used, for this reason (the first one stays).
  bool Fail(std::string reason) {
    std::string& slot = out_->unreadable.back();
    if (slot.empty()) slot = std::move(reason);
    return true;
  }
  // A value of this type where it is not wanted.
  bool Wrong(std::string_view type) {
    const std::string got = "got " + std::string(type);
    switch (level_) {
      case Level::kBody:
        if (out_->error.empty()) {
          out_->error = single_ != nullptr ? "expected a JSON object, " + got
                                           : "expected an event object or an array of them, " + got;
        }
        return true;
      case Level::kElements:
        if (NextEvent() == nullptr) return true;
        return Fail("expected a JSON object, " + got);
      case Level::kMembers:
        switch (member_) {
          case Member::kString:
            return Fail(std::string(string_field_->name) + ": expected a string, " + got);
          case Member::kTimestamp:
            return Fail("timestamp_ms: expected an integer (Unix milliseconds), " + got);
          case Member::kValue:
            return Fail("value: expected a number, " + got);
          case Member::kProperties:
            return Fail("properties: expected an object, " + got);
          case Member::kUnknown:
            return Fail("unknown field \"" + unknown_name_ + "\"");
        }
        return true;
      case Level::kProperties:
        return Fail("properties." + property_name_ + ": expected a string, " + got);
    }
    return true;
  }
  bool Skip() {
    ++skipping_;
    return true;
  }
  bool Unskip() {
    --skipping_;
    return true;
  }

  analytics::EventData* const single_;
  analytics::EventBatch* const batch_;
  const size_t max_events_;
  ParsedEvents* const out_;

  Level level_ = Level::kBody;
  bool body_is_array_ = false;
  size_t skipping_ = 0;  // containers open inside the one being skipped, itself included
  analytics::EventData* event_ = nullptr;
  Member member_ = Member::kUnknown;
  const StringField* string_field_ = nullptr;
  std::string unknown_name_;
  std::string property_name_;
};

// Drives `sax` over a document simdjson has parsed, in document order. Returns false, with
// nothing final in `sax`, for a value whose meaning the document may not keep: a double -0.0.
// simdjson 3.0.1 (Debian 12's) reads "-0" as the integer 0, as nlohmann does, and "-0.0" as a
// double, as nlohmann does; a simdjson that kept the sign of "-0" as a double would make
// timestamp_ms: -0 a refusal. So a -0.0 goes to nlohmann, which tells the two texts apart; it
// costs nothing elsewhere. Recursion is bounded by simdjson's depth limit (1024, checked when
// it parsed).
bool SimdjsonWalk(simdjson::dom::element element, EventsSax& sax) {
  using simdjson::dom::element_type;
  switch (element.type()) {
    case element_type::ARRAY: {
      simdjson::dom::array array;
      if (element.get(array) != simdjson::SUCCESS) return false;
      sax.start_array(0);
      for (simdjson::dom::element child : array) {
        if (!SimdjsonWalk(child, sax)) return false;
      }
      sax.end_array();
      return true;
    }
    case element_type::OBJECT: {
      simdjson::dom::object object;
      if (element.get(object) != simdjson::SUCCESS) return false;
      sax.start_object(0);
      for (simdjson::dom::key_value_pair member : object) {
        sax.Key(member.key);
        if (!SimdjsonWalk(member.value, sax)) return false;
      }
      sax.end_object();
      return true;
    }
    case element_type::INT64: {
      int64_t number = 0;
      if (element.get(number) != simdjson::SUCCESS) return false;
      if (number < 0) return sax.number_integer(number);
      return sax.number_unsigned(static_cast<uint64_t>(number));
    }
    case element_type::UINT64: {
      uint64_t number = 0;
      if (element.get(number) != simdjson::SUCCESS) return false;
      return sax.number_unsigned(number);
    }
    case element_type::DOUBLE: {
      double number = 0;
      if (element.get(number) != simdjson::SUCCESS) return false;
      if (number == 0 && std::signbit(number)) return false;
      return sax.Float(number);
    }
    case element_type::STRING: {
      std::string_view text;
      if (element.get(text) != simdjson::SUCCESS) return false;
      return sax.String(text);
    }
    case element_type::BOOL:
      return sax.boolean(false);  // refused wherever it is, whatever its value
    case element_type::NULL_VALUE:
      return sax.null();
  }
  return false;
}

// Reads `text` by the rules of EventsSax into `single` (one event object) or `batch`. simdjson
// parses first and validates the whole text (structure, UTF-8, numbers): with the rules, a body
// of events goes into its batch at about 280 MB/s on the 2-core VM, against about 100 MB/s with
// nlohmann's parser (bench/README.md). Any text simdjson refuses is read again by nlohmann,
// whose verdict and message are the answer: it says where the text is wrong, and it reads what
// simdjson refuses but JSON allows (integers beyond 64 bits, as doubles; a byte order mark;
// nesting deeper than 1024). So an answer is always nlohmann's; simdjson only gets it sooner
// (fuzz/event_json_fuzzer.cc checks the two agree).
ParsedEvents ReadEvents(std::string_view text, analytics::EventData* single,
                        analytics::EventBatch* batch, size_t max_events, bool simdjson_first) {
  if (simdjson_first) {
    // One parser per thread (the HTTP threads, replay's reader): its buffers grow to the
    // largest text seen and are reused (at most --http-max-body-bytes, 1 MiB by default: a
    // 1 MiB body of events takes 4.4 MiB of resident buffers, measured).
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element document;
    const int events_before = batch != nullptr ? batch->events_size() : 0;
    ParsedEvents parsed;
    EventsSax sax(single, batch, max_events, &parsed);
    if (parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(document) ==
            simdjson::SUCCESS &&
        SimdjsonWalk(document, sax)) {
      return parsed;
    }
    // Undo what a walk that gave up wrote; nlohmann starts afresh.
    if (single != nullptr) single->Clear();
    if (batch != nullptr) {
      batch->mutable_events()->DeleteSubrange(events_before, batch->events_size() - events_before);
    }
  }
  ParsedEvents parsed;
  EventsSax sax(single, batch, max_events, &parsed);
  json::sax_parse(text.begin(), text.end(), &sax);
  return parsed;
}

}  // namespace

std::string ParseEventJson(std::string_view line, analytics::EventData* event) {
  event->Clear();
  const ParsedEvents parsed = ReadEvents(line, event, nullptr, 1, /*simdjson_first=*/true);
  if (!parsed.error.empty()) return parsed.error;
  return parsed.unreadable.empty() ? "expected a JSON object" : parsed.unreadable.front();
}

ParsedEvents ParseEventsJson(std::string_view text, size_t max_events,
                             analytics::EventBatch* batch) {
  return ReadEvents(text, nullptr, batch, max_events, /*simdjson_first=*/true);
}

ParsedEvents ParseEventsJsonWithNlohmannOnly(std::string_view text, size_t max_events,
                                             analytics::EventBatch* batch) {
  return ReadEvents(text, nullptr, batch, max_events, /*simdjson_first=*/false);
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
