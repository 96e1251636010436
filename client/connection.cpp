#include "client/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

namespace baton::detail {
namespace {

constexpr std::size_t k_max_incoming = 64 << 20;

std::error_code last_errno() { return {errno, std::system_category()}; }

// Milliseconds until DEADLINE for poll(2): -1 without one, 0 once past.
int poll_timeout(std::optional<Clock::time_point> deadline) {
  if (!deadline) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30));
}

// One connect attempt. Transient failures (no socket yet, nobody listening)
// come back as daemon_unreachable so the caller retries them.
int connect_once(const std::string& path, std::error_code& ec) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    ec = make_error_code(errc::invalid_argument);
    return -1;
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = last_errno();
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0)
    return fd;
  int error = errno;
  ::close(fd);
  // EACCES is retried too (the sidecar may still be setting the socket's
  // mode), but reported as what it is if it lasts.
  ec = (error == ENOENT || error == ECONNREFUSED || error == EAGAIN || error == ENOTDIR)
           ? make_error_code(errc::daemon_unreachable)
       : error == EACCES || error == EPERM
           ? make_error_code(errc::permission_denied)
           : std::error_code(error, std::system_category());
  return -1;
}

// Who we are, as the daemon is to show it: our pid in our own PID namespace
// (a daemon in another container sees pid 0 through SO_PEERCRED), our host
// name (the pod name in Kubernetes) and program name.
ClientIdentity own_identity() {
  ClientIdentity identity;
  identity.pid = static_cast<int>(::getpid());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0)
    identity.host =
        protocol::sanitize_reported(host, protocol::k_max_reported_host);
  if (program_invocation_short_name)
    identity.program = protocol::sanitize_reported(
        program_invocation_short_name, protocol::k_max_reported_program);
  return identity;
}

}  // namespace

void LockState::mark_lost(std::error_code reason, std::string message) {
  if (lost || released) return;
  lost = reason;
  lost_message = std::move(message);
  if (on_lost) {
    auto callback = std::move(on_lost);
    on_lost = nullptr;
    callback(reason);
  }
}

Connection::~Connection() { close(); }

std::shared_ptr<Connection> Connection::open(const ClientOptions& options,
                                             std::error_code& ec) {
  const auto deadline = Clock::now() + options.connect_timeout;
  auto backoff = std::chrono::milliseconds(5);
  for (;;) {
    ec.clear();
    int fd = connect_once(options.socket_path, ec);
    if (fd >= 0) {
      std::shared_ptr<Connection> connection(new Connection(fd, options));
      // The greeting gets its own bound: a daemon that accepted but hangs
      // must not hold a job forever.
      const auto greeting_deadline = std::max(deadline, Clock::now() + std::chrono::seconds(5));
      ec = connection->read_greeting(greeting_deadline);
      // A first request at once: batond closes a connection that sends
      // none within its --idle-timeout, and a client may connect long
      // before it needs a lock.
      if (!ec) connection->call(protocol::PingRequest{}, greeting_deadline, ec);
      if (!ec) return connection;
      if (ec == errc::timed_out) ec = make_error_code(errc::daemon_unreachable);
      if (ec != errc::connection_lost) return nullptr;
      ec = make_error_code(errc::daemon_unreachable);
    }
    bool retry = ec == errc::daemon_unreachable || ec == errc::permission_denied;
    auto now = Clock::now();
    if (!retry || now >= deadline) return nullptr;
    // Sleep no further than the deadline, then make one last attempt there:
    // a sidecar that comes up in the final milliseconds still counts.
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
  }
}

std::error_code Connection::read_greeting(Clock::time_point deadline) {
  for (;;) {
    if (auto line = take_line()) {
      auto decoded = protocol::decode_server_message(*line);
      if (std::holds_alternative<protocol::DecodeError>(decoded))
        return make_error_code(errc::protocol_error);
      auto& message = std::get<protocol::ServerMessage>(decoded);
      if (message.kind == protocol::ServerMessageKind::reply) {
        // Refused before the greeting: too many connections, not allowed.
        std::string text;
        std::error_code refused = protocol::reply_error(message.object, text);
        return refused ? refused : make_error_code(errc::protocol_error);
      }
      auto greeting = protocol::decode_greeting(message.object);
      if (!greeting) return make_error_code(errc::protocol_error);
      if (greeting->version != protocol::k_version)
        return make_error_code(errc::version_mismatch);
      m_server.server = greeting->server;
      m_server.protocol = greeting->version;
      m_server.pod = greeting->pod;
      m_server.node = greeting->node;
      return {};
    }
    if (Clock::now() >= deadline) return make_error_code(errc::timed_out);
    if (auto ec = fill(deadline)) return ec;
  }
}

std::error_code Connection::send_line(const std::string& line) {
  if (m_broken) return m_broken;
  std::size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(m_fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      fail(make_error_code(errc::connection_lost));
      return m_broken;
    }
  }
  return {};
}

std::error_code Connection::fill(std::optional<Clock::time_point> deadline) {
  if (m_broken) return m_broken;
  pollfd pfd{m_fd, POLLIN, 0};
  int ready = ::poll(&pfd, 1, poll_timeout(deadline));
  if (ready < 0) return errno == EINTR ? std::error_code{} : last_errno();
  if (ready == 0) return make_error_code(errc::timed_out);
  char chunk[16384];
  iovec part{chunk, sizeof chunk};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(m_fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  for (cmsghdr* header = n >= 0 ? CMSG_FIRSTHDR(&message) : nullptr; header;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      m_fds.push_back(passed);
    }
  }
  if (n > 0) {
    m_buffer.append(chunk, static_cast<std::size_t>(n));
    // The greeting's limit is for what we send; the daemon's own lines
    // (a status of many locks) may be longer, within reason.
    if (m_buffer.size() > k_max_incoming && m_buffer.find('\n') == std::string::npos) {
      fail(make_error_code(errc::protocol_error));
      return m_broken;
    }
    return {};
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return {};
  fail(make_error_code(errc::connection_lost));
  return m_broken;
}

std::optional<std::string> Connection::take_line() {
  auto end = m_buffer.find('\n');
  if (end == std::string::npos) return std::nullopt;
  std::string line = m_buffer.substr(0, end);
  m_buffer.erase(0, end + 1);
  return line;
}

std::optional<nlohmann::json> Connection::call(
    protocol::RequestBody body, std::optional<Clock::time_point> deadline,
    std::error_code& ec,
    const std::function<void(const nlohmann::json&)>& on_interim) {
  const std::uint64_t id = m_next_id;
  if ((ec = send_line(encode(std::move(body))))) return std::nullopt;
  for (;;) {
    while (auto line = take_line()) {
      auto decoded = protocol::decode_server_message(*line);
      if (std::holds_alternative<protocol::DecodeError>(decoded)) {
        fail(make_error_code(errc::protocol_error));
        ec = m_broken;
        return std::nullopt;
      }
      auto& message = std::get<protocol::ServerMessage>(decoded);
      if (message.id == id && message.kind == protocol::ServerMessageKind::reply) {
        if ((ec = protocol::reply_error(message.object, m_last_error))) return std::nullopt;
        return std::move(message.object);
      }
      if (message.id == id && message.kind == protocol::ServerMessageKind::interim) {
        if (on_interim) on_interim(message.object);
        continue;
      }
      if ((ec = dispatch(message))) return std::nullopt;
    }
    if (deadline && Clock::now() >= *deadline) {
      // The daemon did not answer in time: the connection's state is now
      // unknown (a late grant would be held by nobody), so give it up.
      fail(make_error_code(errc::connection_lost));
      ec = make_error_code(errc::timed_out);
      return std::nullopt;
    }
    if (auto error = fill(deadline); error && error != errc::timed_out) {
      ec = error;
      return std::nullopt;
    }
  }
}

void Connection::send_only(protocol::RequestBody body, std::error_code& ec) {
  ec = send_line(encode(std::move(body)));
}

std::string Connection::encode(protocol::RequestBody body) {
  protocol::Request request{m_next_id++, std::move(body), std::nullopt};
  // Once per connection: the daemon keeps it for the session.
  if (!std::exchange(m_identified, true)) request.client = own_identity();
  return protocol::encode_request(request);
}

std::error_code Connection::process_events() {
  for (;;) {
    while (auto line = take_line()) {
      auto decoded = protocol::decode_server_message(*line);
      if (std::holds_alternative<protocol::DecodeError>(decoded)) {
        fail(make_error_code(errc::protocol_error));
        return m_broken;
      }
      if (auto ec = dispatch(std::get<protocol::ServerMessage>(decoded))) return ec;
    }
    if (m_broken) return m_broken;
    pollfd pfd{m_fd, POLLIN, 0};
    if (::poll(&pfd, 1, 0) <= 0) return {};
    if (auto ec = fill(Clock::now()); ec && ec != errc::timed_out) return ec;
  }
}

int Connection::take_fd() {
  if (m_fds.empty()) return -1;
  int fd = m_fds.front();
  m_fds.pop_front();
  return fd;
}

std::error_code Connection::dispatch(const protocol::ServerMessage& message) {
  if (message.kind != protocol::ServerMessageKind::event) {
    // Replies to requests nobody waits for (unlock, abort) and stale
    // interims; a descriptor one of them carried is not wanted either.
    if (protocol::field(message.object, "fd", false)) {
      int unwanted = take_fd();
      if (unwanted >= 0) ::close(unwanted);
    }
    return {};
  }
  const auto event = protocol::field(message.object, "event", std::string());
  if (event == "lock_lost" || event == "revoking") {
    auto name = protocol::field(message.object, "name", std::string());
    auto it = m_locks.find(name);
    if (it != m_locks.end()) {
      auto lock = it->second.lock();
      // "revoking" (the daemon is stopping) is a loss to the holder, who
      // should stop now; the daemon keeps the lock until it is released,
      // so the lock stays tracked and release() still unlocks.
      const bool revoking = event == "revoking";
      if (lock) {
        if (!revoking) lock->revoking = false;
        else if (!lock->lost) lock->revoking = true;
        lock->mark_lost(make_error_code(errc::lock_lost),
                        protocol::field(message.object, "message", std::string()));
      }
      if (!revoking || !lock) m_locks.erase(it);
    }
  } else if (protocol::field(message.object, "event", std::string()) == "claim_lost") {
    auto it = m_claims.find(protocol::field(message.object, "claim", std::uint64_t{0}));
    if (it != m_claims.end()) {
      if (auto claim = it->second.lock()) {
        claim->lost = make_error_code(errc::lock_lost);
        claim->lost_message = protocol::field(message.object, "message", std::string());
      }
      m_claims.erase(it);
    }
  }
  return {};
}

void Connection::fail(std::error_code reason) {
  if (m_broken) return;
  m_broken = reason;
  // Tell the daemon too, so that it releases what this session held rather
  // than keep locks whose owner stopped listening.
  if (m_fd >= 0) ::shutdown(m_fd, SHUT_RDWR);
  // Every lock of this session is gone with it: the daemon releases them.
  auto locks = std::move(m_locks);
  for (auto& [name, weak] : locks)
    if (auto lock = weak.lock()) lock->mark_lost(make_error_code(errc::connection_lost));
  auto claims = std::move(m_claims);
  for (auto& [id, weak] : claims)
    if (auto claim = weak.lock()) claim->lost = make_error_code(errc::connection_lost);
}

void Connection::track(const std::shared_ptr<LockState>& lock) {
  m_locks[lock->name] = lock;
}

void Connection::untrack(const std::string& name) { m_locks.erase(name); }

void Connection::track(const std::shared_ptr<ClaimState>& claim) { m_claims[claim->claim] = claim; }

void Connection::untrack(std::uint64_t claim) { m_claims.erase(claim); }

void Connection::close() noexcept {
  if (m_fd >= 0) {
    ::close(m_fd);
    m_fd = -1;
  }
  for (int passed : m_fds) ::close(passed);
  m_fds.clear();
  if (!m_broken) m_broken = make_error_code(errc::connection_lost);
  m_locks.clear();
  m_claims.clear();
}

}  // namespace baton::detail
