// Fuzz target: event_reporter's JSON Lines parser (`replay` reads every line with it).
//
// Input: one line. ParseEventJson must return a reason or an event, never throw or crash; an
// event it accepts must survive EventToJson and a second parse unchanged, since
// `generate --output` writes with EventToJson what `replay` reads back.
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
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
  analytics::EventData event;
  if (!rta::events::ParseEventJson(line, &event).empty()) return 0;
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
