// Fuzz target: the JSON event parsers: event_reporter's JSON Lines (`replay` reads every line
// with ParseEventJson) and the server's HTTP bodies (ParseEventsJson, the same reader).
//
// Input: one line, or one body. Neither parser may throw or crash. ParseEventsJson calls the
// text invalid exactly when nlohmann's own validator does, and reads it exactly as nlohmann
// alone does (simdjson parses first, and must only be faster). An event ParseEventJson accepts must
// survive EventToJson and a second parse unchanged, since `generate --output` writes with
// EventToJson what `replay` reads back, and must read the same as the only element of an array.
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "analytics.pb.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/quiet_protobuf.h"
#include "proto/event_json.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  QuietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  analytics::EventBatch body;
  const rta::events::ParsedEvents parsed = rta::events::ParseEventsJson(line, 4, &body);
  RTA_FUZZ_CHECK(parsed.invalid_json == !nlohmann::json::accept(line));
  RTA_FUZZ_CHECK(parsed.unreadable.size() == static_cast<size_t>(body.events_size()));
  RTA_FUZZ_CHECK(body.events_size() <= 4);
  // simdjson, in front, only gets nlohmann's answer sooner: the same reasons, the same events.
  analytics::EventBatch reference;
  const rta::events::ParsedEvents expected =
      rta::events::ParseEventsJsonWithNlohmannOnly(line, 4, &reference);
  RTA_FUZZ_CHECK(parsed.error == expected.error && parsed.invalid_json == expected.invalid_json);
  RTA_FUZZ_CHECK(parsed.count == expected.count && parsed.unreadable == expected.unreadable);
  RTA_FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(body, reference));

  analytics::EventData event;
  if (!rta::events::ParseEventJson(line, &event).empty()) return 0;
  RTA_FUZZ_CHECK(!parsed.invalid_json && parsed.error.empty() && parsed.count == 1);
  RTA_FUZZ_CHECK(parsed.unreadable.size() == 1 && parsed.unreadable[0].empty());
  RTA_FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(event, body.events(0)));
  RTA_FUZZ_CHECK(!event.event_type().empty());

  const std::string written = rta::events::EventToJson(event);
  RTA_FUZZ_CHECK(written.find('\n') == std::string::npos);  // one event, one line
  analytics::EventData again;
  const std::string error = rta::events::ParseEventJson(written, &again);
  if (!error.empty()) std::fprintf(stderr, "re-parse of %s: %s\n", written.c_str(), error.c_str());
  RTA_FUZZ_CHECK(error.empty());
  // "value": -0.0 reads as -0.0, which EventToJson leaves out like 0: the same amount.
  if (event.value() == 0) event.set_value(0);
  RTA_FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(event, again));
  return 0;
}
