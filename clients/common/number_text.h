#pragma once

#include <cstdint>
#include <string>

namespace rta::client {

// 1234567 -> "1,234,567": counts in the command-line clients' summaries and tables.
std::string WithThousands(uint64_t value);

}  // namespace rta::client
