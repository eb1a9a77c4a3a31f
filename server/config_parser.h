#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/server_config.h"

namespace rta::server {

// What the command line asked for.
struct CommandLine {
  ServerConfig config;
  bool show_help = false;
  bool show_version = false;
  // --init: create the first admin user and its API token in the data directory, write the
  // token to data_dir/admin.token (mode 0600) and exit.
  bool init = false;
};

// Parses `analytics_server` arguments (argv without the program name). An optional
// `--config FILE` (JSON object, same keys as the flags with '_' for '-') is applied first; flags
// win over the file. Returns false and sets *error to a message naming the flag or key at fault.
// Exceptions never escape.
bool ParseCommandLine(const std::vector<std::string>& args, CommandLine* out, std::string* error);
// Whether `arg` is one of the flags that take no value (--help, -h, --version, --init): every
// other "--flag" without '=' takes the next argument as its value.
bool IsSwitch(std::string_view arg);

// Checks ranges and relations between settings; the message names the key.
bool ValidateServerConfig(const ServerConfig& config, std::string* error);

// Checks a listen address: HOST:PORT with PORT within 0..65535 (0 = any free port) and HOST an
// IPv4 address, a bracketed IPv6 address or a host name. On failure *why says what is wrong.
bool ValidateListenAddress(const std::string& address, std::string* why);
// Whether a valid listen address is reachable from this machine only: 127.0.0.0/8, [::1] or
// localhost. 0.0.0.0, [::] and every other name or address are beyond loopback.
bool IsLoopbackAddress(const std::string& address);

// The --help text: every flag with its default.
std::string ServerHelpText();

}  // namespace rta::server
