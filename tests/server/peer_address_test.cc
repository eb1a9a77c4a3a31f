#include "server/peer_address.h"

#include <catch2/catch.hpp>

using rta::server::IsLoopbackPeer;
using rta::server::PeerAddress;

TEST_CASE("a peer is its address without the port", "[server][limits]") {
  CHECK(PeerAddress("ipv4:127.0.0.1:5000") == "127.0.0.1");
  CHECK(PeerAddress("ipv6:[::1]:5000") == "::1");
  CHECK(PeerAddress("ipv6:%5B::1%5D:5000") == "::1");
  CHECK(PeerAddress("ipv6:[2001:db8::7]:443") == "2001:db8::7");
  CHECK(PeerAddress("unix:/tmp/socket") == "unix:/tmp/socket");
}

TEST_CASE("loopback peers are 127/8, ::1, their IPv4-mapped form and Unix sockets", "[server]") {
  CHECK(IsLoopbackPeer("ipv4:127.0.0.1:5000"));
  CHECK(IsLoopbackPeer("ipv4:127.8.9.10:5000"));
  CHECK(IsLoopbackPeer("ipv6:[::1]:5000"));
  CHECK(IsLoopbackPeer("ipv6:%5B::1%5D:5000"));
  CHECK(IsLoopbackPeer("ipv6:[::ffff:127.0.0.1]:5000"));
  CHECK(IsLoopbackPeer("unix:/run/analytics.sock"));
  CHECK_FALSE(IsLoopbackPeer("ipv4:10.0.0.7:5000"));
  CHECK_FALSE(IsLoopbackPeer("ipv4:192.168.1.2:5000"));
  CHECK_FALSE(IsLoopbackPeer("ipv6:[2001:db8::7]:443"));
  CHECK_FALSE(IsLoopbackPeer("ipv6:[::ffff:10.0.0.7]:5000"));
  CHECK_FALSE(IsLoopbackPeer("ipv6:[::]:5000"));
  CHECK_FALSE(IsLoopbackPeer(""));
  CHECK_FALSE(IsLoopbackPeer("garbage"));
}
