#include "server/peer_address.h"

#include <boost/asio/ip/address.hpp>
#include <string>

namespace rta::server {

std::string_view PeerAddress(std::string_view peer) {
  std::string_view rest = peer;
  if (rest.rfind("ipv4:", 0) == 0) {
    rest.remove_prefix(5);
    const size_t colon = rest.rfind(':');
    return colon == std::string_view::npos ? rest : rest.substr(0, colon);
  }
  if (rest.rfind("ipv6:", 0) == 0) {
    rest.remove_prefix(5);
    if (rest.rfind("%5B", 0) == 0 || rest.rfind("%5b", 0) == 0) {
      const size_t close = rest.find("%5D") != std::string_view::npos ? rest.find("%5D")
                                                                       : rest.find("%5d");
      if (close != std::string_view::npos) return rest.substr(3, close - 3);
    }
    if (!rest.empty() && rest.front() == '[') {
      const size_t close = rest.find(']');
      if (close != std::string_view::npos) return rest.substr(1, close - 1);
    }
    return rest;
  }
  return peer;
}

bool IsLoopbackPeer(std::string_view peer) {
  if (peer.rfind("unix:", 0) == 0 || peer.rfind("unix-abstract:", 0) == 0) return true;
  boost::system::error_code parse_error;
  const boost::asio::ip::address ip =
      boost::asio::ip::make_address(std::string(PeerAddress(peer)), parse_error);
  if (parse_error) return false;
  if (ip.is_v6() && ip.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, ip.to_v6()).is_loopback();
  }
  return ip.is_loopback();
}

}  // namespace rta::server
