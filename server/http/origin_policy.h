#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rta::server::http {

// Which web origins may post to the HTTP port (CORS, --http-allowed-origins).
//
// Browsers send simple requests (a text/plain body, sendBeacon) without asking first, so the
// list is enforced by the server itself, not only advertised in Access-Control-Allow-Origin: a
// request whose Origin header is not allowed is refused before anything is counted. A request
// without an Origin header does not come from a web page's script (curl, a backend service)
// and is not subject to it. Immutable after Parse(): thread-safe.
class OriginPolicy {
 public:
  // "" (no origin), "*" (any), or comma-separated origins "scheme://host[:port]" (http or
  // https, no path). False with *error naming the bad entry. `out` may be null (check only).
  static bool Parse(std::string_view list, OriginPolicy* out, std::string* error);

  bool Allows(std::string_view origin) const;
  bool any() const { return any_; }

 private:
  bool any_ = false;
  std::vector<std::string> origins_;  // lower case
};

}  // namespace rta::server::http
