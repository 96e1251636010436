#include "baton/client.hpp"

#include <cstdlib>
#include <utility>

#include "client/connection.hpp"
#include "protocol/lock_name.hpp"
#include "protocol/path_name.hpp"

namespace baton {
namespace {

using detail::Clock;
using nlohmann::json;

void throw_if(const std::error_code& ec, const char* what) {
  if (ec) throw std::system_error(ec, what);
}

std::error_code not_connected() { return make_error_code(errc::connection_lost); }

// Every call starts here: EC and the last error message are the previous
// call's until cleared. False (EC set) when there is no connection.
bool begin_call(const std::shared_ptr<detail::Connection>& connection, std::error_code& ec) {
  ec.clear();
  if (!connection) {
    ec = not_connected();
    return false;
  }
  connection->last_error_message().clear();
  return true;
}

// Refuses, before sending, a path the daemon would refuse: a name that is
// not UTF-8 cannot even travel in JSON, and would arrive as another name.
bool valid_path(detail::Connection& connection, std::string_view path, std::string_view what,
                std::error_code& ec) {
  std::string why = protocol::check_relative_path(path);
  if (why.empty()) return true;
  ec = make_error_code(errc::invalid_path);
  connection.last_error_message() = std::string(what) + why;
  return false;
}

Status parse_status(json reply) {
  Status status;
  const json& server = reply["server"];
  if (server.is_object()) {
    status.server.server = protocol::field(server, "server", std::string());
    status.server.pod = protocol::field(server, "pod", std::string());
    status.server.node = protocol::field(server, "node", std::string());
    status.server.root = protocol::field(server, "root", std::string());
  }
  status.server.protocol = protocol::k_version;
  if (const json& locks = reply["locks"]; locks.is_array()) {
    for (const json& entry : locks) {
      if (!entry.is_object()) continue;
      LockStatus lock;
      lock.name = protocol::field(entry, "name", std::string());
      for (const char* field : {"holders", "waiters"}) {
        auto& out = field[0] == 'h' ? lock.holders : lock.waiters;
        if (auto it = entry.find(field); it != entry.end() && it->is_array())
          for (const json& holder : *it) out.push_back(holder.get<Holder>());
      }
      status.locks.push_back(std::move(lock));
    }
  }
  if (auto unknown = reply.find("unknown"); unknown != reply.end() && unknown->is_array())
    for (const json& line : *unknown)
      if (line.is_string()) status.unknown.push_back(line.get<std::string>());
  reply.erase("id");
  reply.erase("ok");
  status.json = reply.dump(-1, ' ', false, json::error_handler_t::replace);
  return status;
}

}  // namespace

std::string default_socket_path() {
  const char* env = std::getenv("BATON_SOCKET");
  return env && *env ? env : "/run/baton/baton.sock";
}

Client::Client() noexcept = default;
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

void Client::connect(const ClientOptions& options) {
  std::error_code ec;
  connect(options, ec);
  throw_if(ec, "baton: connect");
}

void Client::connect(const ClientOptions& options, std::error_code& ec) noexcept {
  try {
    m_connection = detail::Connection::open(options, ec);
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  } catch (const std::exception&) {
    ec = make_error_code(errc::protocol_error);  // a daemon that breaks the protocol
  }
}

bool Client::connected() const noexcept { return m_connection != nullptr; }

Lock Client::lock(std::string_view name, const LockOptions& options) {
  std::error_code ec;
  Lock lock = this->lock(name, options, ec);
  throw_if(ec, "baton: lock");
  return lock;
}

Lock Client::lock(std::string_view name, const LockOptions& options,
                  std::error_code& ec) {
  if (!begin_call(m_connection, ec)) return {};
  if (std::string why = protocol::check_lock_name(name); !why.empty()) {
    ec = make_error_code(errc::invalid_name);
    m_connection->last_error_message() = why;
    return {};
  }
  protocol::LockRequest request{std::string(name), options.mode, options.timeout};
  // The daemon enforces the timeout; ours only guards against a daemon that
  // stopped answering, so it is the same plus the request bound.
  std::optional<Clock::time_point> deadline;
  if (options.timeout)
    deadline = Clock::now() + *options.timeout + m_connection->options().request_timeout;

  auto on_interim = [&](const json& interim) {
    if (!options.on_queued) return;
    QueueInfo info;
    info.name = std::string(name);
    info.position = protocol::field(interim, "position", std::size_t{0});
    if (auto it = interim.find("holder"); it != interim.end() && it->is_object())
      info.holder = it->get<Holder>();
    options.on_queued(info);
  };
  auto reply = m_connection->call(std::move(request), deadline, ec, on_interim);
  if (!reply) return {};

  auto state = std::make_shared<detail::LockState>();
  state->name = std::string(name);
  state->mode = options.mode;
  state->token = protocol::field(*reply, "token", std::uint64_t{0});
  state->waited = std::chrono::microseconds(protocol::field(*reply, "waited_us", std::int64_t{0}));
  m_connection->track(state);
  return Lock(m_connection, std::move(state));
}

Lock Client::try_lock(std::string_view name, LockMode mode) {
  std::error_code ec;
  Lock lock = try_lock(name, mode, ec);
  throw_if(ec, "baton: try_lock");
  return lock;
}

Lock Client::try_lock(std::string_view name, LockMode mode, std::error_code& ec) {
  LockOptions options;
  options.mode = mode;
  options.timeout = std::chrono::milliseconds(0);
  return lock(name, options, ec);
}

Publisher Client::publish(std::string_view path, const PublishOptions& options) {
  std::error_code ec;
  Publisher publisher = publish(path, options, ec);
  throw_if(ec, "baton: publish");
  return publisher;
}

Publisher Client::publish(std::string_view path, const PublishOptions& options,
                          std::error_code& ec) {
  if (!begin_call(m_connection, ec) || !valid_path(*m_connection, path, "", ec)) return {};
  protocol::PublishBeginRequest request{std::string(path), options.mode, options.no_replace};
  auto deadline = Clock::now() + m_connection->options().request_timeout;
  auto reply = m_connection->call(std::move(request), deadline, ec);
  if (!reply) return {};
  int fd = m_connection->take_fd();
  if (fd < 0) {
    ec = make_error_code(errc::protocol_error);
    return {};
  }
  return Publisher(m_connection, protocol::field(*reply, "stage", std::uint64_t{0}), fd, std::string(path),
                   options.token);
}

OpenedFile Client::open(std::string_view path) {
  std::error_code ec;
  OpenedFile file = open(path, ec);
  throw_if(ec, "baton: open");
  return file;
}

OpenedFile Client::open(std::string_view path, std::error_code& ec) {
  OpenedFile file;
  if (!begin_call(m_connection, ec) || !valid_path(*m_connection, path, "", ec)) return file;
  auto deadline = Clock::now() + m_connection->options().request_timeout;
  auto reply = m_connection->call(protocol::ReadRequest{std::string(path)}, deadline, ec);
  if (!reply) return file;
  file.fd = m_connection->take_fd();
  if (file.fd < 0) ec = make_error_code(errc::protocol_error);
  file.version = protocol::field(*reply, "version", std::uint64_t{0});
  file.size = protocol::field(*reply, "size", std::uint64_t{0});
  return file;
}

std::uint64_t Client::wait(std::string_view path, const WaitOptions& options) {
  std::error_code ec;
  std::uint64_t version = wait(path, options, ec);
  throw_if(ec, "baton: wait");
  return version;
}

std::uint64_t Client::wait(std::string_view path, const WaitOptions& options,
                           std::error_code& ec) {
  if (!begin_call(m_connection, ec) || !valid_path(*m_connection, path, "", ec)) return 0;
  std::optional<Clock::time_point> deadline;
  if (options.timeout)
    deadline = Clock::now() + *options.timeout + m_connection->options().request_timeout;
  protocol::WaitRequest request{std::string(path), options.newer_than, options.timeout};
  auto reply = m_connection->call(std::move(request), deadline, ec);
  if (!reply) return 0;
  return protocol::field(*reply, "version", std::uint64_t{0});
}

PendingItem Client::enqueue(std::string_view queue) {
  std::error_code ec;
  PendingItem item = enqueue(queue, ec);
  throw_if(ec, "baton: enqueue");
  return item;
}

PendingItem Client::enqueue(std::string_view queue, std::error_code& ec) {
  if (!begin_call(m_connection, ec) || !valid_path(*m_connection, queue, "queue ", ec))
    return {};
  auto deadline = Clock::now() + m_connection->options().request_timeout;
  auto reply = m_connection->call(protocol::EnqueueBeginRequest{std::string(queue)}, deadline, ec);
  if (!reply) return {};
  int fd = m_connection->take_fd();
  if (fd < 0) {
    ec = make_error_code(errc::protocol_error);
    return {};
  }
  return PendingItem(m_connection, protocol::field(*reply, "stage", std::uint64_t{0}), fd);
}

QueueItem Client::claim(std::string_view queue, std::optional<std::chrono::milliseconds> timeout) {
  std::error_code ec;
  QueueItem item = claim(queue, timeout, ec);
  throw_if(ec, "baton: claim");
  return item;
}

QueueItem Client::claim(std::string_view queue, std::optional<std::chrono::milliseconds> timeout,
                        std::error_code& ec) {
  if (!begin_call(m_connection, ec) || !valid_path(*m_connection, queue, "queue ", ec))
    return {};
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + *timeout + m_connection->options().request_timeout;
  auto reply = m_connection->call(protocol::ClaimRequest{std::string(queue), timeout}, deadline, ec);
  if (!reply) return {};
  int fd = m_connection->take_fd();
  if (fd < 0) {
    ec = make_error_code(errc::protocol_error);
    return {};
  }
  return QueueItem(m_connection, protocol::field(*reply, "claim", std::uint64_t{0}),
                   protocol::field(*reply, "item", std::string()), fd);
}

void Client::ping() {
  std::error_code ec;
  ping(ec);
  throw_if(ec, "baton: ping");
}

void Client::ping(std::error_code& ec) {
  if (!begin_call(m_connection, ec)) return;
  auto deadline = Clock::now() + m_connection->options().request_timeout;
  m_connection->call(protocol::PingRequest{}, deadline, ec);
}

Status Client::status() {
  std::error_code ec;
  Status result = status(ec);
  throw_if(ec, "baton: status");
  return result;
}

Status Client::status(std::error_code& ec) {
  if (!begin_call(m_connection, ec)) return {};
  auto deadline = Clock::now() + m_connection->options().request_timeout;
  auto reply = m_connection->call(protocol::StatusRequest{}, deadline, ec);
  if (!reply) return {};
  return parse_status(std::move(*reply));
}

const std::string& Client::last_error_message() const noexcept {
  static const std::string k_none;
  return m_connection ? m_connection->last_error_message() : k_none;
}

const ServerInfo& Client::server_info() const noexcept {
  static const ServerInfo k_none;
  return m_connection ? m_connection->server_info() : k_none;
}

int Client::native_handle() const noexcept {
  return m_connection ? m_connection->fd() : -1;
}

std::error_code Client::process_events() {
  return m_connection ? m_connection->process_events() : not_connected();
}

void Client::close() noexcept { m_connection.reset(); }

}  // namespace baton
