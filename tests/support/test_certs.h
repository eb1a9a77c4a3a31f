#pragma once

#include <string>

namespace rta::testing {

// A throwaway PKI made with the openssl command line in `dir`, for TLS tests: a CA (ca.pem), two
// server certificates it signed for localhost and 127.0.0.1 (server_a.pem/.key with CN
// server-a, server_b.pem/.key with CN server-b), a client certificate it signed (client.pem/.key),
// and a client certificate from another CA (stranger.pem/.key). EC P-256 keys, valid 2 days.
// Returns false (with openssl's output in *error) when openssl fails.
bool MakeTestCertificates(const std::string& dir, std::string* error);

// The whole content of a file ("" when unreadable).
std::string ReadWholeFile(const std::string& path);

}  // namespace rta::testing
