#include "daemon/session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <spdlog/spdlog.h>

namespace baton::daemon {
namespace {

namespace asio = boost::asio;
using boost::asio::experimental::awaitable_operators::operator&&;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);

// Child coroutines of a session end on their own (their waits finish when
// the session releases everything); an exception there is a bug to log.
auto log_failure(std::string what) {
  return [what = std::move(what)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& error) {
      spdlog::error("{}: internal error: {}", what, error.what());
    }
  };
}

}  // namespace

Session::Session(Socket socket, ClientInfo client, SessionHost& host)
    : m_socket(std::move(socket)),
      m_client(client),
      m_host(host),
      m_outbox_ready(m_socket.get_executor()) {
  m_outbox_ready.expires_at(std::chrono::steady_clock::time_point::max());
}

asio::awaitable<void> Session::run() {
  spdlog::debug("connect {}", m_client.describe());
  send(m_host.greeting());
  co_await (read_requests() && write_replies());
  m_host.locks().release_all(*this);
  spdlog::debug("disconnect {}", m_client.describe());
}

asio::awaitable<void> Session::read_requests() {
  const std::size_t max = m_host.session_limits().max_message_bytes;
  while (!m_closing) {
    auto [ec, size] = co_await asio::async_read_until(
        m_socket, asio::dynamic_buffer(m_input, max), '\n', k_tuple);
    if (ec == asio::error::not_found) {
      // No newline within the limit: we cannot find the next message.
      send(protocol::encode_error(std::nullopt, errc::limit_exceeded,
                                  "message longer than " + std::to_string(max) + " bytes"));
      spdlog::warn("{}: message over {} bytes, closing", m_client.describe(), max);
      break;
    }
    if (ec) break;  // closed by the peer, or by us
    std::string_view line(m_input.data(), size - 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // socat crlf
    if (!line.empty()) {
      auto decoded = protocol::decode_request(line);
      if (auto* error = std::get_if<protocol::DecodeError>(&decoded)) {
        send(protocol::encode_error(error->id, error->code, error->message));
      } else {
        handle(std::get<protocol::Request>(std::move(decoded)));
      }
    }
    m_input.erase(0, size);
  }
  m_closing = true;
  m_outbox_ready.cancel();
}

asio::awaitable<void> Session::write_replies() {
  for (;;) {
    if (m_outbox.empty()) {
      if (m_closing) break;
      co_await m_outbox_ready.async_wait(k_tuple);
      continue;
    }
    auto [ec, written] =
        co_await asio::async_write(m_socket, asio::buffer(m_outbox.front()), k_tuple);
    if (ec) break;
    m_outbox_bytes -= m_outbox.front().size();
    m_outbox.pop_front();
  }
  close();
}

void Session::send(std::string line) {
  if (!m_socket.is_open()) return;
  m_outbox_bytes += line.size();
  m_outbox.push_back(std::move(line));
  if (m_outbox_bytes > m_host.session_limits().max_send_queue_bytes) {
    // The client does not read: dropping it (and its locks) is the only
    // bound on our memory it cannot defeat.
    spdlog::warn("{}: {} bytes of replies unread, closing", m_client.describe(),
                 m_outbox_bytes);
    close();
    return;
  }
  m_outbox_ready.cancel();
}

void Session::close() {
  m_closing = true;
  boost::system::error_code ignored;
  m_socket.shutdown(Socket::shutdown_both, ignored);
  m_socket.close(ignored);
  m_outbox_ready.cancel();
}

void Session::close_after_flush() {
  m_closing = true;
  boost::system::error_code ignored;
  m_socket.shutdown(Socket::shutdown_receive, ignored);  // ends the reader
  m_outbox_ready.cancel();
}

void Session::handle(protocol::Request request) {
  const std::uint64_t id = request.id;
  if (std::holds_alternative<protocol::PingRequest>(request.body)) {
    send(protocol::encode_ok(id));
  } else if (std::holds_alternative<protocol::StatusRequest>(request.body)) {
    asio::co_spawn(m_socket.get_executor(),
                   [self = shared_from_this(), id] { return self->handle_status(id); },
                   log_failure("status"));
  } else if (auto* lock = std::get_if<protocol::LockRequest>(&request.body)) {
    if (!m_used_locks) {
      m_used_locks = true;
      m_host.session_used_locks();
    }
    if (m_names.contains(lock->name)) {
      send(protocol::encode_error(id, errc::already_held,
                                  "lock '" + lock->name + "' is already held or requested "
                                  "on this connection"));
      return;
    }
    if (m_names.size() >= m_host.session_limits().max_locks) {
      send(protocol::encode_error(
          id, errc::limit_exceeded,
          "at most " + std::to_string(m_host.session_limits().max_locks) +
              " locks held or requested per connection"));
      return;
    }
    m_names.insert(lock->name);
    m_lost.erase(lock->name);
    asio::co_spawn(m_socket.get_executor(),
                   [self = shared_from_this(), id, request = std::move(*lock)]() mutable {
                     return self->handle_lock(id, std::move(request));
                   },
                   log_failure("lock"));
  } else if (auto* unlock = std::get_if<protocol::UnlockRequest>(&request.body)) {
    if (m_lost.erase(unlock->name)) {
      send(protocol::encode_ok(id));  // already gone; not the client's fault
      return;
    }
    std::error_code ec = m_host.locks().release(*this, unlock->name);
    if (ec) {
      send(protocol::encode_error(id, errc::not_held,
                                  "lock '" + unlock->name + "' is not held on this connection"));
      return;
    }
    m_names.erase(unlock->name);
    send(protocol::encode_ok(id));
  }
}

asio::awaitable<void> Session::handle_lock(std::uint64_t id, protocol::LockRequest request) {
  // A named std::function, not a lambda inside the co_await expression:
  // g++ 12 destroys such a capturing lambda twice.
  std::function<void(const QueuedNotice&)> on_queued = [this, id, name = request.name](
                                                           const QueuedNotice& notice) {
    nlohmann::json interim{{"id", id}, {"queued", true}, {"name", name},
                           {"position", notice.position}};
    if (notice.holder) interim["holder"] = *notice.holder;
    send(protocol::encode_line(interim));
  };
  Acquired result = co_await m_host.locks().acquire(*this, request.name, request.mode,
                                                   request.timeout, std::move(on_queued));
  if (result.error) {
    m_names.erase(request.name);
    send(protocol::encode_error(id, static_cast<errc>(result.error.value()), result.message));
    co_return;
  }
  send(protocol::encode_ok(id, {{"name", request.name},
                                {"token", result.token},
                                {"waited_us", result.waited.count()}}));
}

asio::awaitable<void> Session::handle_status(std::uint64_t id) {
  std::vector<LockStatus> locks = co_await m_host.locks().status();
  nlohmann::json list = nlohmann::json::array();
  for (const LockStatus& lock : locks)
    list.push_back({{"name", lock.name}, {"holders", lock.holders}, {"waiters", lock.waiters}});
  send(protocol::encode_ok(id, {{"server", m_host.server_status()}, {"locks", list}}));
}

void Session::lock_lost(const std::string& name, std::uint64_t token, const std::string& why) {
  m_names.erase(name);
  m_lost.insert(name);
  send(protocol::encode_line(
      {{"event", "lock_lost"}, {"name", name}, {"token", token}, {"message", why}}));
}

}  // namespace baton::daemon
