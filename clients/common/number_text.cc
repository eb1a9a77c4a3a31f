#include "clients/common/number_text.h"

#include <cstdio>
#include <ctime>

namespace rta::client {

std::string WithThousands(uint64_t value) {
  const std::string digits = std::to_string(value);
  std::string text;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) text += ',';
    text += digits[i];
  }
  return text;
}

std::string UtcText(int64_t ms, bool millis) {
  const time_t seconds = static_cast<time_t>(ms / 1000);
  tm parts{};
  gmtime_r(&seconds, &parts);
  char text[80];  // room for any int fields, which keeps -Wformat-truncation quiet
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900,
                parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec);
  std::string out = text;
  if (millis) {
    std::snprintf(text, sizeof text, ".%03d", static_cast<int>(ms % 1000));
    out += text;
  }
  return out + "Z";
}

}  // namespace rta::client
