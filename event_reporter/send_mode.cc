#include "event_reporter/send_mode.h"

#include <cstdint>
#include <optional>

#include "event_reporter/cli_common.h"

namespace rta::reporter {
namespace {

using client::Flags;
using detail::Concat;

constexpr char kSendUsage[] = R"(event_reporter send --type TYPE [flags]

Sends one event, for quick checks from a shell.
  --type TYPE           page_view, click, add_to_cart, purchase, signup, page_load, ... (required)
  --id ID               event id, default: generated
  --page PATH  --visitor ID  --session ID  --referrer HOST  --utm-source S  --utm-campaign C
  --country CC  --device D  --value X  --timestamp-ms MS (default: now)
  --property KEY=VALUE  (repeatable)

Examples:
  event_reporter send --type page_view --page /pricing --visitor v1 --session s1
  event_reporter send --type purchase --value 59.90 --visitor v1 --session s1 --json
)";

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF): protobuf refuses anything else in a string field when it parses, so the server
// could not read the event.
bool IsValidUtf8(const std::string& text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  for (size_t i = 0; i < size;) {
    const unsigned char lead = bytes[i];
    size_t length;
    uint32_t code;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > size) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((bytes[i + k] & 0xC0) != 0x80) return false;
      code = (code << 6) | (bytes[i + k] & 0x3F);
    }
    constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

}  // namespace

int RunSend(const std::vector<std::string>& args, const CliEnvironment& environment) {
  Flags flags(args,
              Concat(detail::kDeliveryValueFlags,
                     {"type", "id", "page", "visitor", "session", "referrer", "utm-source",
                      "utm-campaign", "country", "device", "value", "timestamp-ms", "property"}),
              detail::kDeliverySwitches);
  if (flags.Has("help")) {
    std::fprintf(environment.out, "%s%s", kSendUsage, detail::kDeliveryFlagsHelp.c_str());
    return 0;
  }
  analytics::EventData event;
  event.set_event_type(flags.String("type"));
  event.set_event_id(flags.String("id"));
  event.set_page(flags.String("page"));
  event.set_visitor_id(flags.String("visitor"));
  event.set_session_id(flags.String("session"));
  event.set_referrer(flags.String("referrer"));
  event.set_utm_source(flags.String("utm-source"));
  event.set_utm_campaign(flags.String("utm-campaign"));
  event.set_country(flags.String("country"));
  event.set_device(flags.String("device"));
  event.set_value(flags.Number("value", 0, -1e300, 1e300));
  event.set_timestamp_ms(flags.Integer("timestamp-ms", detail::NowMs(), 0, INT64_MAX));
  for (const std::string& property : flags.All("property")) {
    const size_t equals = property.find('=');
    if (equals == std::string::npos || equals == 0) {
      flags.Fail("--property: expected KEY=VALUE, got \"" + property + "\"");
      break;
    }
    (*event.mutable_properties())[property.substr(0, equals)] = property.substr(equals + 1);
  }
  if (event.event_type().empty()) flags.Fail("--type is required");
  for (const char* name : {"type", "id", "page", "visitor", "session", "referrer", "utm-source",
                           "utm-campaign", "country", "device", "property"}) {
    for (const std::string& value : flags.All(name)) {
      if (!IsValidUtf8(value)) {
        flags.Fail("--" + std::string(name) +
                   ": not valid UTF-8 (the server could not read such an event)");
      }
    }
  }
  detail::Delivery delivery("send", flags, environment);
  if (!flags.error().empty()) return detail::UsageError(environment, flags.error(), "send");
  if (!delivery.Start([] { return std::optional<double>(); })) return 2;
  delivery.outcome().extra["event_id"] =
      event.event_id().empty() ? "(generated)" : event.event_id();
  delivery.reporter().Submit(std::move(event));
  return delivery.Finish();
}

}  // namespace rta::reporter
