#pragma once

#include <google/protobuf/stubs/logging.h>

#include <string>

// Protobuf logs an error line for every string field with invalid UTF-8 it parses, which most
// fuzz inputs have; the parse result says the same, so the fuzz targets drop the log lines.
inline void QuietProtobuf() {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
}
