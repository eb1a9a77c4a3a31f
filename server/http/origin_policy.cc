#include "server/http/origin_policy.h"

#include <algorithm>
#include <cctype>

namespace rta::server::http {
namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

// "scheme://host[:port]" as browsers write the Origin header; "" or why not.
std::string CheckOrigin(std::string_view origin) {
  size_t rest = 0;
  if (origin.rfind("http://", 0) == 0) {
    rest = 7;
  } else if (origin.rfind("https://", 0) == 0) {
    rest = 8;
  } else {
    return "must start with http:// or https://";
  }
  const std::string_view authority = origin.substr(rest);
  if (authority.empty()) return "has no host";
  for (char c : authority) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                    c == ':' || c == '[' || c == ']';
    if (!ok) return "must be scheme://host[:port], without a path";
  }
  return "";
}

}  // namespace

bool OriginPolicy::Parse(std::string_view list, OriginPolicy* out, std::string* error) {
  OriginPolicy policy;
  list = Trim(list);
  if (list == "*") {
    policy.any_ = true;
  } else {
    while (!list.empty()) {
      const size_t comma = list.find(',');
      const std::string_view entry = Trim(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (entry.empty()) continue;
      if (entry == "*") {
        *error = "'*' must stand alone";
        return false;
      }
      if (std::string why = CheckOrigin(entry); !why.empty()) {
        *error = "'" + std::string(entry.substr(0, 100)) + "' " + why;
        return false;
      }
      policy.origins_.push_back(Lower(entry));
    }
  }
  if (out != nullptr) *out = std::move(policy);
  return true;
}

bool OriginPolicy::Allows(std::string_view origin) const {
  if (any_) return true;
  const std::string lower = Lower(origin);
  return std::find(origins_.begin(), origins_.end(), lower) != origins_.end();
}

}  // namespace rta::server::http
