#pragma once

#include <cstddef>
#include <string_view>

namespace rta::agg {

// The longest prefix of `text` of at most `max_bytes` that does not end inside a UTF-8 sequence,
// so that a cut string stays valid UTF-8 (proto3 `string` fields must be: a response holding a
// split character would not parse on the client). Assumes `text` itself is valid UTF-8.
inline std::string_view CutAtUtf8Boundary(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

}  // namespace rta::agg
