#pragma once

#include <string>

#include "server/auth/user_directory.h"
#include "server/server_config.h"

namespace rta::server {

// What --init and --init-admin make in an open user directory: the user "admin" with role admin
// and one API token for it, the token written to token_path (created with mode 0600, never
// overwritten: an existing file is an error). *token_id names the token.
bool CreateFirstAdmin(auth::UserDirectory* users, const std::string& token_path,
                      std::string* token_id, std::string* error);

// `analytics_server --init`: the documented first step towards a server that needs tokens.
// In config.data_dir (locked like a running server's, so not while one runs on it) creates the
// user "admin" with role admin and one API token for it, and writes the token, and only the
// token, to data_dir/admin.token, created with mode 0600 (never overwritten). Refuses when the
// directory already has a user. On success *report says what was made and what to do next.
bool InitAccess(const ServerConfig& config, std::string* report, std::string* error);

}  // namespace rta::server
