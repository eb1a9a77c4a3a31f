#include "clients/common/flags.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace rta::client {

Flags::Flags(const std::vector<std::string>& args, const std::vector<std::string>& value_flags,
             const std::vector<std::string>& switches) {
  const auto known = [](const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      positional_.push_back(arg);  // includes "-" for stdin
      continue;
    }
    const size_t equals = arg.find('=');
    const std::string name =
        arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    if (known(switches, name)) {
      if (equals != std::string::npos) Fail("--" + name + " takes no value");
      values_[name].push_back("true");
    } else if (known(value_flags, name)) {
      if (equals != std::string::npos) {
        values_[name].push_back(arg.substr(equals + 1));
      } else if (i + 1 < args.size()) {
        values_[name].push_back(args[++i]);
      } else {
        Fail("--" + name + " needs a value");
      }
    } else {
      Fail("unknown flag --" + name);
    }
  }
}

std::string Flags::String(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Flags::All(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

double Flags::Number(const std::string& name, double fallback, double min, double max) {
  if (!Has(name)) return fallback;
  const std::string text = String(name);
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(value) || value < min ||
      value > max) {
    char range[64];
    std::snprintf(range, sizeof range, "from %g to %g", min, max);
    Fail("--" + name + ": expected a number " + range + ", got \"" + text + "\"");
    return fallback;
  }
  return value;
}

int64_t Flags::Integer(const std::string& name, int64_t fallback, int64_t min, int64_t max) {
  if (!Has(name)) return fallback;
  const std::string text = String(name);
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < min || value > max) {
    Fail("--" + name + ": expected a whole number from " + std::to_string(min) + " to " +
         std::to_string(max) + ", got \"" + text + "\"");
    return fallback;
  }
  return value;
}

}  // namespace rta::client
