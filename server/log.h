#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace rta::server {

// One lifecycle log line on stderr in key=value form:
//   ts=2026-11-25T10:00:00.123Z level=info event=listening address=0.0.0.0:50051
// Values with spaces or quotes are quoted. Thread-safe (one fputs per line). Not for the hot path.
using LogField = std::pair<std::string_view, std::string>;
void LogEvent(std::string_view level, std::string_view event,
              std::initializer_list<LogField> fields);

inline void LogInfo(std::string_view event, std::initializer_list<LogField> fields = {}) {
  LogEvent("info", event, fields);
}
inline void LogWarn(std::string_view event, std::initializer_list<LogField> fields = {}) {
  LogEvent("warn", event, fields);
}

}  // namespace rta::server
