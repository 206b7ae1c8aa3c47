// The transport interface the RPC layer is written against: a listener that
// accepts byte streams, and blocking client streams. Nothing above this
// header knows that the Linux implementation is a Unix-domain socket, so a
// Windows named-pipe transport can be added behind the same interface.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "ipc/event_loop.h"

namespace symphony::ipc {

// Who is on the other end, as the kernel reports it (never as the peer
// claims). On Unix: SO_PEERCRED and SO_PEERGROUPS.
struct PeerCredentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int32_t pid = 0;
  std::vector<std::uint32_t> groups;  // supplementary groups
};
std::string describe(const PeerCredentials& peer);  // "uid 1000 gid 1000 pid 4242"

// An accepted connection, driven by the listener's event loop.
class Stream {
 public:
  virtual ~Stream() = default;
  // Reads up to buf.size() bytes; 0 means the peer closed. One read at a time.
  virtual void read(std::span<std::byte> buf, IoHandler handler) = 0;
  // Writes some of buf; the handler gets the count. One write at a time.
  virtual void write(std::span<const std::byte> buf, IoHandler handler) = 0;
  // Ends our direction of the stream (the peer reads EOF after what was
  // written); reading goes on.
  virtual void shutdown_write() = 0;
  // Cancels pending operations (their handlers run later with ECANCELED) and
  // closes the connection. Buffers given to read/write must stay valid until
  // those handlers have run.
  virtual void close() = 0;
  virtual const PeerCredentials& peer() const = 0;
};

using AcceptedHandler = std::function<void(Result<std::unique_ptr<Stream>>)>;

class Listener {
 public:
  virtual ~Listener() = default;
  // Accepts one connection. One accept at a time.
  virtual void accept(AcceptedHandler handler) = 0;
  // Stops listening; a pending accept's handler runs with ECANCELED.
  virtual void close() = 0;
  // Where clients connect ("/run/symphony/symphonyd.sock").
  virtual const std::string& address() const = 0;
};

struct ListenOptions {
  unsigned mode = 0660;        // permission bits of the socket file
  std::int64_t group = -1;     // gid to own the socket file, or -1 to keep ours
  int backlog = 512;
};

// Creates a listener at `address`. A stale socket file left by a crashed
// daemon is replaced; a live one (someone accepts on it) is an error.
Result<std::unique_ptr<Listener>> listen(EventLoop& loop, const std::string& address,
                                         const ListenOptions& options);
// Adopts an already-listening socket (systemd socket activation).
Result<std::unique_ptr<Listener>> adopt_listener(EventLoop& loop, int fd);

// A blocking client connection (symphonyctl, the SDK, tests).
class ClientStream {
 public:
  virtual ~ClientStream() = default;
  // Reads at least one byte; 0 means the daemon closed the connection.
  virtual Result<std::size_t> read_some(std::span<std::byte> buf) = 0;
  virtual Result<void> write_all(std::span<const std::byte> buf) = 0;
};

Result<std::unique_ptr<ClientStream>> connect(const std::string& address);

}  // namespace symphony::ipc
