#pragma once

#include <string_view>

namespace rta::server::http {

// web/tracker.js as built into the binary (embedded_files.cc.in): GET /tracker.js serves it, so
// a site needs nothing but the server's address in its script tag.
std::string_view TrackerJs();
// web/live.html: the live view (GET /), KPI tiles and a chart over a gRPC-Web subscription.
std::string_view LiveViewHtml();

}  // namespace rta::server::http
