// The Unix-domain-socket implementation of the transport interface: stream
// sockets, credentials from SO_PEERCRED / SO_PEERGROUPS, and a socket file
// whose mode and group are set before listen(2) so that no client can ever
// connect while it is wider open than configured.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "ipc/transport.h"

namespace symphony::ipc {
namespace {

Result<sockaddr_un> make_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error::invalid("socket path '" + path + "' is empty or longer than " +
                          std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

PeerCredentials read_credentials(int fd) {
  PeerCredentials peer;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.pid = cred.pid;
  } else {
    // Unknown credentials must never pass an allow-list check.
    peer.uid = peer.gid = static_cast<std::uint32_t>(-1);
  }
  std::vector<gid_t> groups(32);
  len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  int r = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  if (r != 0 && errno == ERANGE) {
    groups.resize(len / sizeof(gid_t));
    r = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
  }
  if (r == 0) peer.groups.assign(groups.begin(), groups.begin() + len / sizeof(gid_t));
  return peer;
}

class UnixStream final : public Stream {
 public:
  UnixStream(EventLoop& loop, UniqueFd fd) : loop_(loop), fd_(std::move(fd)) {
    peer_ = read_credentials(fd_.get());
  }
  ~UnixStream() override { close(); }

  void read(std::span<std::byte> buf, IoHandler handler) override {
    if (!fd_) return loop_.defer([h = std::move(handler)] { h(Error(EBADF, "read on closed stream")); });
    loop_.recv(fd_.get(), buf, std::move(handler));
  }
  void write(std::span<const std::byte> buf, IoHandler handler) override {
    if (!fd_) return loop_.defer([h = std::move(handler)] { h(Error(EBADF, "write on closed stream")); });
    loop_.send(fd_.get(), buf, std::move(handler));
  }
  void shutdown_write() override {
    if (fd_) ::shutdown(fd_.get(), SHUT_WR);
  }
  void close() override {
    if (!fd_) return;
    loop_.cancel(fd_.get());
    fd_.reset();
  }
  const PeerCredentials& peer() const override { return peer_; }

 private:
  EventLoop& loop_;
  UniqueFd fd_;
  PeerCredentials peer_;
};

class UnixListener final : public Listener {
 public:
  UnixListener(EventLoop& loop, UniqueFd fd, std::string address, bool owns_path)
      : loop_(loop), fd_(std::move(fd)), address_(std::move(address)), owns_path_(owns_path) {}
  ~UnixListener() override { close(); }

  void accept(AcceptedHandler handler) override {
    if (!fd_) {
      return loop_.defer([h = std::move(handler)] { h(Error(EBADF, "accept on closed listener")); });
    }
    loop_.accept(fd_.get(), [this, h = std::move(handler)](Result<UniqueFd> conn) {
      if (!conn) return h(std::move(conn).error());
      h(std::unique_ptr<Stream>(std::make_unique<UnixStream>(loop_, std::move(*conn))));
    });
  }
  void close() override {
    if (!fd_) return;
    loop_.cancel(fd_.get());
    fd_.reset();
    // A socket passed in by systemd belongs to systemd; ours we remove.
    if (owns_path_) ::unlink(address_.c_str());
  }
  const std::string& address() const override { return address_; }

 private:
  EventLoop& loop_;
  UniqueFd fd_;
  std::string address_;
  bool owns_path_;
};

class UnixClientStream final : public ClientStream {
 public:
  explicit UnixClientStream(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<std::size_t> read_some(std::span<std::byte> buf) override {
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return Error::from_errno("recv");
    }
  }
  Result<void> write_all(std::span<const std::byte> buf) override {
    while (!buf.empty()) {
      ssize_t n = ::send(fd_.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::from_errno("send");
      }
      buf = buf.subspan(static_cast<std::size_t>(n));
    }
    return ok();
  }

 private:
  UniqueFd fd_;
};

// True when something accepts connections on `addr` (a live daemon). A
// daemon that just died can keep its socket listening for a few
// milliseconds: an io_uring accept in flight holds the socket until the
// kernel tears the ring down asynchronously, and then resets the
// connections queued on it. So a connect that succeeds is watched for a
// second: silence, or any bytes (a live daemon refusing us says why), mean
// a live listener; a hang-up with nothing said means a dead one.
bool someone_listens(const sockaddr_un& addr) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return false;
  }
  pollfd p{probe.get(), POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 1000) == 0) return true;
  char byte;
  return ::recv(probe.get(), &byte, 1, MSG_DONTWAIT) > 0;
}

}  // namespace

std::string describe(const PeerCredentials& peer) {
  return "uid " + std::to_string(peer.uid) + " gid " + std::to_string(peer.gid) + " pid " +
         std::to_string(peer.pid);
}

Result<std::unique_ptr<Listener>> listen(EventLoop& loop, const std::string& address,
                                         const ListenOptions& options) {
  auto addr = make_address(address);
  if (!addr) return std::move(addr).error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("socket(AF_UNIX)");

  struct stat st {};
  if (::lstat(address.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(EEXIST, address + " exists and is not a socket; refusing to replace it");
    }
    if (someone_listens(*addr)) {
      return Error(EADDRINUSE, "another daemon is already listening on " + address);
    }
    ::unlink(address.c_str());  // stale socket from a crashed daemon
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return Error::from_errno("bind " + address);
  }
  // Permissions before listen(): until then connect() is refused, so the
  // file is never reachable with the umask's wider bits.
  if (::chmod(address.c_str(), options.mode) != 0) {
    ::unlink(address.c_str());
    return Error::from_errno("chmod " + address);
  }
  if (options.group >= 0 &&
      ::chown(address.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(options.group)) != 0) {
    ::unlink(address.c_str());
    return Error::from_errno("chown " + address + " to gid " + std::to_string(options.group));
  }
  if (::listen(fd.get(), options.backlog) != 0) {
    ::unlink(address.c_str());
    return Error::from_errno("listen " + address);
  }
  return std::unique_ptr<Listener>(
      std::make_unique<UnixListener>(loop, std::move(fd), address, /*owns_path=*/true));
}

Result<std::unique_ptr<Listener>> adopt_listener(EventLoop& loop, int raw_fd) {
  UniqueFd fd(raw_fd);
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Error::from_errno("getsockname on inherited fd " + std::to_string(raw_fd));
  }
  if (addr.sun_family != AF_UNIX) {
    return Error::invalid("inherited fd " + std::to_string(raw_fd) + " is not a Unix socket");
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return Error::from_errno("set O_NONBLOCK on inherited fd");
  }
  std::string path(addr.sun_path, ::strnlen(addr.sun_path, sizeof(addr.sun_path)));
  return std::unique_ptr<Listener>(
      std::make_unique<UnixListener>(loop, std::move(fd), path, /*owns_path=*/false));
}

Result<std::unique_ptr<ClientStream>> connect(const std::string& address) {
  auto addr = make_address(address);
  if (!addr) return std::move(addr).error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("socket(AF_UNIX)");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return Error::from_errno("connect " + address);
  }
  return std::unique_ptr<ClientStream>(std::make_unique<UnixClientStream>(std::move(fd)));
}

}  // namespace symphony::ipc
