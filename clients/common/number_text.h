#pragma once

#include <cstdint>
#include <string>

namespace rta::client {

// 1234567 -> "1,234,567": counts in the command-line clients' summaries and tables.
std::string WithThousands(uint64_t value);

// Unix milliseconds as ISO 8601 in UTC: "2026-12-02T13:02:01Z", or with `millis`
// "2026-12-02T13:02:01.250Z".
std::string UtcText(int64_t ms, bool millis);

}  // namespace rta::client
