#pragma once

#include <string_view>

namespace rta::server {

// The address part of a gRPC peer string: "ipv4:127.0.0.1:5000" -> "127.0.0.1",
// "ipv6:[::1]:5000" (or gRPC's percent-encoded "ipv6:%5B::1%5D:5000") -> "::1",
// "unix:/path" -> "unix:/path" (anything else: the whole string).
std::string_view PeerAddress(std::string_view peer);

// Whether a gRPC peer is on this machine's loopback: 127.0.0.0/8, ::1, an IPv4-mapped loopback
// address (::ffff:127.0.0.1, from a dual-stack listener), or a Unix socket.
bool IsLoopbackPeer(std::string_view peer);

}  // namespace rta::server
