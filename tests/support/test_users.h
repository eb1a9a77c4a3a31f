#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rta::testing {

// Writes users (user_id, one role name) and one live token each into data_dir/store before a
// server starts there, as `analytics_server --init` and an admin would have; returns
// user_id -> token. Fails the test (REQUIRE) when the store cannot be written.
std::map<std::string, std::string> MakeUsersWithTokens(
    const std::string& data_dir, const std::vector<std::pair<std::string, std::string>>& users);

}  // namespace rta::testing
