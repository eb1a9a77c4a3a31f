#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rta::client {

// Command-line flags of one mode: `--name value`, `--name=value` or a bare `--switch`, plus
// positional arguments. Knows which flags the mode takes, so a typo is an error that names it.
// Errors are collected, not thrown: error() is the first one, "" when all is well.
class Flags {
 public:
  // value_flags take a value; switches do not. Repeatable flags keep every value.
  Flags(const std::vector<std::string>& args, const std::vector<std::string>& value_flags,
        const std::vector<std::string>& switches);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string String(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> All(const std::string& name) const;  // every value, in order
  // Typed values; a malformed or out-of-range value records an error and returns the fallback.
  double Number(const std::string& name, double fallback, double min, double max);
  int64_t Integer(const std::string& name, int64_t fallback, int64_t min, int64_t max);
  const std::vector<std::string>& positional() const { return positional_; }

  const std::string& error() const { return error_; }
  void Fail(const std::string& message) {
    if (error_.empty()) error_ = message;
  }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
  std::string error_;
};

}  // namespace rta::client
