#pragma once

#include <map>
#include <string>

namespace rta::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection refused, closed, timed out)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One HTTP/1.1 request on a new connection to 127.0.0.1:port (Boost.Beast, synchronous, 10 s
// limit). `headers` are added as given (e.g. {"Content-Type", "application/json"}).
HttpAnswer HttpRequest(int port, const std::string& method, const std::string& target,
                       const std::map<std::string, std::string>& headers = {},
                       const std::string& body = "");

// POST /v1/events with a JSON body.
HttpAnswer PostEvents(int port, const std::string& body, const std::string& query = "",
                      const std::map<std::string, std::string>& headers = {});

}  // namespace rta::testing
