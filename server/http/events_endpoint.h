#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http/rate_limiter.h"
#include "server/service_state.h"

namespace rta::server::http {

// What POST /v1/events answers, before the wait for the log.
struct Reply {
  unsigned status = 200;
  std::string body;           // JSON: the counts, or {"error": "..."}
  std::string_view content_type = "application/json";
  std::string_view cache_control = "no-store";
  int64_t retry_after_s = 0;  // > 0: a Retry-After header (429, 503)
  uint64_t durable_lsn = 0;   // the answer may be sent once the log is durable up to this
};

// One POST /v1/events, as the HTTP session read it.
struct EventsRequest {
  std::string_view body;
  std::string_view content_type;
  std::optional<std::string_view> authorization;  // the Authorization header, when present
  std::string_view site_key;                      // ?site=KEY, "" when absent
  std::string_view address;                       // the client's IP address
};

// Events posted as JSON: the HTTP twin of ReportEventBatches, on the same path as its calls
// (ingest_call.h, ingest_journal.h): the same checks and per-event errors, the same de-dup, one
// log record per request, acknowledged only once durable. The body is one event object or an
// array of them, with EventData's field names (proto/event_json.h); text/plain bodies are read
// the same way, so that navigator.sendBeacon needs no CORS preflight.
//
// Who may post: while tokens are required (auth.h), an API token whose user may call
// ReportEventBatches (`Authorization: Bearer ...`) or a site key of --http-site-keys; while they
// are not, anyone who reaches the port (site keys, when listed, must still be listed ones).
// Rates: --http-events-per-second-per-address, -per-site, and the token's own limit.
//
// Thread-safety: Handle() from any thread (the HTTP threads); everything it shares is.
class EventsEndpoint {
 public:
  explicit EventsEndpoint(ServiceState& state);

  Reply Handle(const EventsRequest& request);

  // {"error": message}
  static std::string ErrorJson(std::string_view message);

 private:
  // Each: nothing, or the reply that refuses the request.
  std::optional<Reply> Authenticate(const EventsRequest& request, auth::Principal* principal);
  std::optional<Reply> TakeRate(const EventsRequest& request, const auth::Principal& principal,
                                size_t events);

  ServiceState& state_;
  std::vector<std::string> site_keys_;
  KeyedRateLimiter per_address_;
  KeyedRateLimiter per_site_;
};

}  // namespace rta::server::http
