#include "tests/support/cutting_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

namespace rta::testing {
namespace {

// How often a blocked thread looks at the stop flag.
constexpr int kPollMs = 50;

int ConnectLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Writes all of data; false when the peer is gone.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::send(fd, data, size, MSG_NOSIGNAL);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    data += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

}  // namespace

CuttingProxy::CuttingProxy(Options options) : options_(options), rng_(options.seed) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("cutting proxy: socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("cutting proxy: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { Accept(); });
}

CuttingProxy::~CuttingProxy() {
  stop_.store(true);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> relays;
  {
    std::lock_guard lock(mutex_);
    relays.swap(relays_);
  }
  for (std::thread& relay : relays) relay.join();
}

void CuttingProxy::Accept() {
  while (!stop_.load()) {
    pollfd ready{listen_fd_, POLLIN, 0};
    if (::poll(&ready, 1, kPollMs) <= 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    if (connections_.load() >= static_cast<uint64_t>(options_.max_connections)) {
      refused_.fetch_add(1);
      ::close(client);
      continue;
    }
    const int upstream = ConnectLoopback(options_.target_port);
    if (upstream < 0) {
      ::close(client);  // the target is down: the client sees a closed connection
      continue;
    }
    const int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connections_.fetch_add(1);
    const size_t budget =
        std::uniform_int_distribution<size_t>(options_.min_bytes, options_.max_bytes)(rng_);
    std::lock_guard lock(mutex_);
    relays_.emplace_back([this, client, upstream, budget] { Relay(client, upstream, budget); });
  }
}

void CuttingProxy::Relay(int client, int upstream, size_t budget) {
  char buffer[16 * 1024];
  size_t left = budget;
  bool cut = false;
  while (!stop_.load()) {
    pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
    const int ready = ::poll(fds, 2, kPollMs);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    bool closed = false;
    for (int i = 0; i < 2 && !closed && !cut; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t got = ::recv(fds[i].fd, buffer, std::min(sizeof buffer, left), 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        closed = true;
        break;
      }
      bytes_.fetch_add(static_cast<uint64_t>(got));
      if (!WriteAll(fds[1 - i].fd, buffer, static_cast<size_t>(got))) closed = true;
      left -= static_cast<size_t>(got);
      if (left == 0) cut = true;
    }
    if (closed || cut) break;
  }
  if (cut) {
    cuts_.fetch_add(1);
    // An abortive close (RST): the connection ends at once, as when a middlebox drops it.
    const linger abort{1, 0};
    ::setsockopt(client, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    ::setsockopt(upstream, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  ::close(client);
  ::close(upstream);
}

}  // namespace rta::testing
