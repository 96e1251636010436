#include "daemon/session.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <spdlog/spdlog.h>

#include "protocol/json_line.hpp"

namespace baton::daemon {
namespace {

namespace asio = boost::asio;

// Counts a request as pending for as long as its handler runs.
struct PendingGuard {
  std::size_t& count;
  ~PendingGuard() { --count; }
};
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
      m_outbox_ready(m_socket.get_executor()),
      m_budget(host.buffer_budget()),
      m_idle_timer(m_socket.get_executor()) {
  m_outbox_ready.expires_at(std::chrono::steady_clock::time_point::max());
}

asio::awaitable<void> Session::run() {
  spdlog::debug("connect {}", m_client.describe());
  send(m_host.greeting());
  m_line_since = std::chrono::steady_clock::now();  // the first request is due within the idle timeout
  arm_idle_timer();
  co_await (read_requests() && write_replies());
  m_idle_timer.cancel();
  m_host.locks().release_all(*this);
  std::string().swap(m_input);
  m_budget->give(std::exchange(m_charged, 0));
  co_await discard_stages();
  spdlog::debug("disconnect {}", m_client.describe());
}

// Reads what the socket has into a buffer shared by all sessions (one loop
// thread: reads never overlap), then appends it to m_input. A connection
// that sends nothing so costs no buffer at all, and m_input grows only
// within the global budget.
asio::awaitable<void> Session::read_requests() {
  static char scratch[64 * 1024];
  const std::size_t max = m_host.session_limits().max_message_bytes;
  boost::system::error_code ec;
  m_socket.non_blocking(true, ec);
  while (!m_closing && !ec) {
    std::size_t n = m_socket.read_some(asio::buffer(scratch), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      std::tie(ec) = co_await m_socket.async_wait(Socket::wait_read, k_tuple);
      continue;
    }
    if (ec) break;  // closed by the peer, or by us
    const std::size_t had = m_input.size();
    const std::size_t capacity = m_input.capacity();
    const std::size_t grown =
        had + n <= capacity ? capacity : std::max(had + n, 2 * capacity);  // libstdc++'s growth
    if (!recharge(grown, m_outbox_bytes)) {
      const std::size_t limit = m_budget->limit;
      send(protocol::encode_error(
          std::nullopt, errc::limit_exceeded,
          "daemon input buffers are full (--max-buffered-bytes " + std::to_string(limit) +
              "): a request of " + std::to_string(had + n) + "+ bytes is not accepted now"));
      spdlog::warn("{}: buffers of all connections at --max-buffered-bytes {}, closing this "
                   "one ({} bytes of an unfinished request)",
                   m_client.describe(), limit, had + n);
      break;
    }
    m_input.append(scratch, n);
    recharge(m_input.capacity(), m_outbox_bytes, /*force=*/true);
    // Handle every complete line before the writer runs: the replies that
    // are ready at once (an unlock, then an uncontended lock) then leave in
    // one write and wake the client once.
    std::size_t start = 0;
    bool too_long = false;
    for (std::size_t end = m_input.find('\n', had);
         !m_closing && end != std::string::npos; end = m_input.find('\n', start)) {
      if (end + 1 - start > max) {
        too_long = true;
        break;
      }
      handle_line(std::string_view(m_input).substr(start, end - start));
      start = end + 1;
    }
    m_input.erase(0, start);
    if ((too_long || m_input.size() >= max) && !m_closing) {
      // No newline within the limit: we cannot find the next message.
      send(protocol::encode_error(std::nullopt, errc::limit_exceeded,
                                  "message longer than " + std::to_string(max) + " bytes"));
      spdlog::warn("{}: message over {} bytes, closing", m_client.describe(), max);
      break;
    }
    if (m_input.capacity() > BufferBudget::k_free_bytes && m_input.size() < m_input.capacity() / 4) {
      std::string(m_input).swap(m_input);  // give a large line's room back
      recharge(m_input.capacity(), m_outbox_bytes, /*force=*/true);
    }
    note_input(start > 0);
  }
  m_closing = true;
  m_outbox_ready.cancel();
}

void Session::handle_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // socat crlf
  // An empty line is not a JSON object either: it gets its protocol_error.
  auto decoded = protocol::decode_request(line);
  if (auto* error = std::get_if<protocol::DecodeError>(&decoded)) {
    send(protocol::encode_error(error->id, error->code, error->message));
  } else {
    handle(std::get<protocol::Request>(std::move(decoded)));
  }
}

bool Session::recharge(std::size_t input_capacity, std::size_t outbox, bool force) {
  auto over = [](std::size_t bytes) {
    return bytes > BufferBudget::k_free_bytes ? bytes - BufferBudget::k_free_bytes : 0;
  };
  const std::size_t wanted = over(input_capacity) + over(outbox);
  if (wanted > m_charged) {
    if (!m_budget->take(wanted - m_charged)) {
      if (!force) return false;
      m_budget->used += wanted - m_charged;
    }
  } else {
    m_budget->give(m_charged - wanted);
  }
  m_charged = wanted;
  return true;
}

void Session::note_input(bool completed_a_line) {
  if (completed_a_line) {
    m_spoke = true;
    m_last_active = std::chrono::steady_clock::now();
    m_line_since.reset();
  }
  if (m_input.empty()) {
    if (m_spoke) m_line_since.reset();
  } else if (!m_line_since) {
    m_line_since = std::chrono::steady_clock::now();  // a new line began
  }
  arm_idle_timer();
}

void Session::arm_idle_timer() {
  const auto timeout = m_host.session_limits().idle_timeout;
  if (timeout.count() == 0 || m_idle_armed || !m_line_since || m_closing) return;
  m_idle_armed = true;
  m_idle_timer.expires_at(*m_line_since + timeout);
  m_idle_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!self) return;
    self->m_idle_armed = false;
    if (!ec) self->idle_timer_fired();
  });
}

// The deadline may have moved since the timer was set (a request came), so
// it is judged again here; the timer is re-armed only while one runs.
void Session::idle_timer_fired() {
  if (m_closing || !m_line_since) return;
  const auto timeout = m_host.session_limits().idle_timeout;
  if (busy()) {
    m_line_since = std::chrono::steady_clock::now();  // never closed while it holds or waits
  } else if (std::chrono::steady_clock::now() >= *m_line_since + timeout) {
    const std::string seconds = fmt::format("{:g}", timeout.count() / 1000.0);
    close_with_error(errc::timed_out,
                     m_spoke ? "request line not finished within " + seconds + " s (--idle-timeout)"
                             : "no request within " + seconds + " s of connecting (--idle-timeout)");
    return;
  }
  arm_idle_timer();
}

bool Session::busy() const noexcept {
  return !m_names.empty() || !m_waiting.empty() || !m_stages.empty() || !m_items.empty() ||
         !m_claims.empty() || m_pending_publishes || m_pending_items || m_pending_claims ||
         m_pending_waits || m_in_flight || !m_outbox.empty();
}

void Session::close_with_error(errc code, const std::string& message) {
  if (m_closing || !m_socket.is_open()) return;
  spdlog::debug("{}: closing: {}", m_client.describe(), message);
  if (m_outbox.empty()) {
    // Straight to the socket, never waiting: a client that does not read
    // must not keep its connection open by filling its buffer.
    std::string line = protocol::encode_error(std::nullopt, code, message);
    [[maybe_unused]] ssize_t ignored =
        ::send(m_socket.native_handle(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  close();
}

asio::awaitable<void> Session::write_replies() {
  for (;;) {
    if (m_outbox.empty()) {
      if (m_closing) break;
      co_await m_outbox_ready.async_wait(k_tuple);
      continue;
    }
    Outgoing& next = m_outbox.front();
    if (next.fd >= 0) {
      bool sent = co_await send_with_fd(next.bytes, next.fd);
      ::close(std::exchange(next.fd, -1));
      if (!sent) break;
    }
    // Every reply ready now goes in one write, up to the next that carries
    // a descriptor. Deque elements stay put while send() appends.
    m_batch.clear();
    for (const Outgoing& reply : m_outbox) {
      if ((reply.fd >= 0 && !m_batch.empty()) || m_batch.size() == k_max_batch) break;
      m_batch.push_back(asio::buffer(reply.bytes));
    }
    auto [ec, written] = co_await asio::async_write(m_socket, m_batch, k_tuple);
    if (ec) break;
    for (std::size_t i = m_batch.size(); i > 0; --i) {
      m_outbox_bytes -= m_outbox.front().bytes.size();
      m_outbox.pop_front();
    }
    recharge(m_input.capacity(), m_outbox_bytes, /*force=*/true);
  }
  for (Outgoing& unsent : m_outbox)
    if (unsent.fd >= 0) ::close(std::exchange(unsent.fd, -1));
  close();
}

// Sends the start of BYTES with FD attached (SCM_RIGHTS), leaving the rest
// in BYTES for an ordinary write. Asio has no ancillary data, so this waits
// for writability and calls sendmsg(2) itself.
asio::awaitable<bool> Session::send_with_fd(std::string& bytes, int fd) {
  for (;;) {
    iovec part{bytes.data(), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(header), &fd, sizeof(int));
    ssize_t n = ::sendmsg(m_socket.native_handle(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      m_outbox_bytes -= static_cast<std::size_t>(n);
      bytes.erase(0, static_cast<std::size_t>(n));
      co_return true;
    }
    if (errno != EAGAIN && errno != EINTR) co_return false;
    auto [ec] = co_await m_socket.async_wait(Socket::wait_write, k_tuple);
    if (ec) co_return false;
  }
}

void Session::send(std::string line, int fd) {
  if (!m_socket.is_open()) {
    if (fd >= 0) ::close(fd);
    return;
  }
  // Judge the backlog before this reply: one large reply (a status of many
  // locks) is fine, a client that stopped reading is not.
  const bool backlog = m_outbox_bytes > m_host.session_limits().max_send_queue_bytes;
  m_outbox_bytes += line.size();
  m_outbox.push_back(Outgoing{std::move(line), fd});
  if (!recharge(m_input.capacity(), m_outbox_bytes)) {
    spdlog::warn("{}: replies of all connections at --max-buffered-bytes {}, closing this one "
                 "({} bytes unsent)",
                 m_client.describe(), m_budget->limit, m_outbox_bytes);
    close();
    return;
  }
  if (backlog) {
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
  m_idle_timer.cancel();
  boost::system::error_code ignored;
  m_socket.shutdown(Socket::shutdown_both, ignored);
  m_socket.close(ignored);
  m_outbox_ready.cancel();
}

void Session::close_after_flush() {
  m_closing = true;
  m_idle_timer.cancel();
  boost::system::error_code ignored;
  m_socket.shutdown(Socket::shutdown_receive, ignored);  // ends the reader
  m_outbox_ready.cancel();
}

void Session::handle(protocol::Request request) {
  const std::uint64_t id = request.id;
  // Who the client says it is: the first word counts, for the whole session.
  if (request.client && m_client.reported_json.empty() &&
      !request.client->empty()) {
    m_client.set_reported(std::move(*request.client));
    spdlog::debug("identified {}", m_client.describe());
  }
  // Probes (ping, status) do not make a client: --exit-when-idle waits for
  // the clients that do real work.
  if (!m_did_work && !std::holds_alternative<protocol::PingRequest>(request.body) &&
      !std::holds_alternative<protocol::StatusRequest>(request.body)) {
    m_did_work = true;
    m_host.session_did_work();
  }
  if (std::holds_alternative<protocol::PingRequest>(request.body)) {
    send(protocol::encode_ok(id));
  } else if (std::holds_alternative<protocol::StatusRequest>(request.body)) {
    ++m_in_flight;
    asio::co_spawn(m_socket.get_executor(),
                   [self = shared_from_this(), id] { return self->handle_status(id); },
                   log_failure("status"));
  } else if (auto* lock = std::get_if<protocol::LockRequest>(&request.body)) {
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
    if (auto granted = m_host.locks().acquire_now(*this, lock->name, lock->mode)) {
      send(granted_reply(id, lock->name, *granted));
      return;
    }
    m_waiting[lock->name] = id;
    asio::co_spawn(m_socket.get_executor(),
                   [self = shared_from_this(), id, request = std::move(*lock)]() mutable {
                     return self->handle_lock(id, std::move(request));
                   },
                   log_failure("lock"));
  } else if (auto* begin = std::get_if<protocol::PublishBeginRequest>(&request.body)) {
    if (m_stages.size() + m_pending_publishes >= m_host.session_limits().max_stages) {
      send(protocol::encode_error(
          id, errc::limit_exceeded,
          "at most " + std::to_string(m_host.session_limits().max_stages) +
              " publishes in progress per connection"));
      return;
    }
    ++m_pending_publishes;
    spawn(&Session::handle_publish_begin, id, std::move(*begin));
  } else if (auto* commit = std::get_if<protocol::PublishCommitRequest>(&request.body)) {
    spawn(&Session::handle_publish_commit, id, *commit);
  } else if (auto* abort = std::get_if<protocol::PublishAbortRequest>(&request.body)) {
    auto it = m_stages.find(abort->stage);
    if (it == m_stages.end()) {
      send(protocol::encode_error(id, errc::not_found,
                                  "no publish " + std::to_string(abort->stage) + " in progress"));
      return;
    }
    // Removing the staging file blocks: hand it to the pool.
    auto staged = std::shared_ptr<StagedFile>(std::move(it->second));
    m_stages.erase(it);
    boost::asio::post(m_host.offload().pool_executor(), [staged]() mutable { staged.reset(); });
    send(protocol::encode_ok(id));
  } else if (auto* begin_item = std::get_if<protocol::EnqueueBeginRequest>(&request.body)) {
    if (m_items.size() + m_pending_items >= m_host.session_limits().max_stages) {
      send(protocol::encode_error(id, errc::limit_exceeded,
                                  "at most " + std::to_string(m_host.session_limits().max_stages) +
                                      " enqueues in progress per connection"));
      return;
    }
    ++m_pending_items;
    spawn(&Session::handle_enqueue_begin, id, std::move(*begin_item));
  } else if (auto* commit_item = std::get_if<protocol::EnqueueCommitRequest>(&request.body)) {
    spawn(&Session::handle_enqueue_commit, id, *commit_item);
  } else if (auto* abort_item = std::get_if<protocol::EnqueueAbortRequest>(&request.body)) {
    auto it = m_items.find(abort_item->stage);
    if (it == m_items.end()) {
      send(protocol::encode_error(id, errc::not_found,
                                  "no enqueue " + std::to_string(abort_item->stage) + " in progress"));
      return;
    }
    auto staged = std::shared_ptr<StagedItem>(std::move(it->second));
    m_items.erase(it);
    boost::asio::post(m_host.offload().pool_executor(), [staged]() mutable { staged.reset(); });
    send(protocol::encode_ok(id));
  } else if (auto* claim = std::get_if<protocol::ClaimRequest>(&request.body)) {
    if (m_claims.size() + m_pending_claims >= m_host.session_limits().max_stages) {
      send(protocol::encode_error(id, errc::limit_exceeded,
                                  "at most " + std::to_string(m_host.session_limits().max_stages) +
                                      " claimed items per connection"));
      return;
    }
    ++m_pending_claims;
    spawn(&Session::handle_claim, id, std::move(*claim));
  } else if (auto* ack = std::get_if<protocol::AckRequest>(&request.body)) {
    spawn(&Session::finish_claim, id, ack->claim, true);
  } else if (auto* nack = std::get_if<protocol::NackRequest>(&request.body)) {
    spawn(&Session::finish_claim, id, nack->claim, false);
  } else if (auto* read = std::get_if<protocol::ReadRequest>(&request.body)) {
    spawn(&Session::handle_read, id, std::move(*read));
  } else if (auto* wait = std::get_if<protocol::WaitRequest>(&request.body)) {
    if (m_pending_waits >= m_host.session_limits().max_waits) {
      send(protocol::encode_error(id, errc::limit_exceeded,
                                  "at most " + std::to_string(m_host.session_limits().max_waits) +
                                      " waits pending per connection"));
      return;
    }
    ++m_pending_waits;
    spawn(&Session::handle_wait, id, std::move(*wait));
  } else if (auto* unlock = std::get_if<protocol::UnlockRequest>(&request.body)) {
    if (m_lost.erase(unlock->name)) {
      send(protocol::encode_ok(id));  // already gone; not the client's fault
      return;
    }
    if (auto waiting = m_waiting.find(unlock->name); waiting != m_waiting.end()) {
      // Withdraws a request not answered yet: queued, not yet queued (its
      // coroutine has not started), or granted an instant ago (its reply not
      // sent). Either way it is never granted after this, and gets its reply
      // before the unlock's.
      const std::uint64_t lock_id = waiting->second;
      m_waiting.erase(waiting);
      if (!m_host.locks().cancel(*this, unlock->name)) m_host.locks().release(*this, unlock->name);
      m_names.erase(unlock->name);
      send(protocol::encode_error(lock_id, errc::cancelled,
                                  "lock request for '" + unlock->name + "' withdrawn by unlock " +
                                      std::to_string(id)));
      send(protocol::encode_ok(id));
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
  // An unlock may have withdrawn this request already (and answered it).
  auto wanted = [&] {
    auto it = m_waiting.find(request.name);
    return it != m_waiting.end() && it->second == id;
  };
  if (!wanted()) co_return;
  Acquired result = co_await m_host.locks().acquire(*this, request.name, request.mode,
                                                   request.timeout, std::move(on_queued));
  if (!wanted()) co_return;
  m_waiting.erase(request.name);
  if (result.error) {
    m_names.erase(request.name);
    send(protocol::encode_error(id, static_cast<errc>(result.error.value()), result.message));
    co_return;
  }
  send(granted_reply(id, request.name, result));
}

std::string Session::granted_reply(std::uint64_t id, const std::string& name,
                                   const Acquired& granted) {
  return protocol::JsonLine()
      .number("id", id)
      .boolean("ok", true)
      .string("name", name)
      .number("token", granted.token)
      .number("waited_us", granted.waited.count())
      .finish();
}

asio::awaitable<void> Session::handle_status(std::uint64_t id) {
  PendingGuard in_flight{m_in_flight};
  // Bounded: on a hung mount the reply says what could not be read.
  const auto deadline = std::chrono::steady_clock::now() + m_host.status_budget();
  StatusReport report = co_await m_host.locks().status(deadline);
  nlohmann::json list = nlohmann::json::array();
  for (const LockStatus& lock : report.locks)
    list.push_back({{"name", lock.name}, {"holders", lock.holders}, {"waiters", lock.waiters}});
  nlohmann::json body{{"server", m_host.server_status()}, {"locks", list}};
  if (!report.unknown.empty()) body["unknown"] = report.unknown;
  send(protocol::encode_ok(id, body));
}

template <typename Handler, typename... Args>
void Session::spawn(Handler handler, std::uint64_t id, Args... args) {
  ++m_in_flight;
  // The lambda lives in co_spawn's frame until the handler is done.
  asio::co_spawn(m_socket.get_executor(),
                 [self = shared_from_this(), handler, id, args...]() mutable
                 -> asio::awaitable<void> {
                   PendingGuard in_flight{self->m_in_flight};
                   co_await ((*self).*handler)(id, std::move(args)...);
                 },
                 log_failure("request"));
}

void Session::send_error(std::uint64_t id, const Failure& failure) {
  errc code = errc::io_error;
  if (failure.code.category() == error_category()) code = static_cast<errc>(failure.code.value());
  else if (failure.code == std::errc::no_such_file_or_directory) code = errc::not_found;
  else if (failure.code == std::errc::permission_denied) code = errc::permission_denied;
  send(protocol::encode_error(id, code, failure.message));
}

asio::awaitable<void> Session::handle_publish_begin(std::uint64_t id,
                                                    protocol::PublishBeginRequest request) {
  PendingGuard pending{m_pending_publishes};
  Failure failure;
  int writer = -1;
  const RootDir& root = m_host.root();
  std::uint64_t instance = m_host.instance_id();
  std::unique_ptr<StagedFile> staged = co_await m_host.offload().quick([&] {
    auto created =
        StagedFile::create(root, request.path, request.mode, request.no_replace, instance, failure);
    if (created) writer = created->writer_fd(failure);
    if (writer < 0) created.reset();
    return created;
  });
  if (!staged) {
    send_error(id, failure);
    co_return;
  }
  std::uint64_t stage = m_next_stage++;
  m_stages.emplace(stage, std::move(staged));
  send(protocol::encode_ok(id, {{"stage", stage}, {"path", request.path}, {"fd", true}}), writer);
}

asio::awaitable<void> Session::handle_publish_commit(std::uint64_t id,
                                                     protocol::PublishCommitRequest request) {
  auto it = m_stages.find(request.stage);
  if (it == m_stages.end()) {
    send(protocol::encode_error(id, errc::not_found,
                                "no publish " + std::to_string(request.stage) + " in progress"));
    co_return;
  }
  // Ours now: a second commit of the same stage finds nothing.
  std::shared_ptr<StagedFile> staged(std::move(it->second));
  m_stages.erase(it);
  const std::string path = staged->dest();
  Failure failure;
  const RootDir& root = m_host.root();
  std::optional<VersionRecord> record = co_await m_host.offload().slow([&] {
    auto result = staged->commit(root, request.token, failure);
    staged.reset();  // an aborted commit removes its staging file here, off the loop
    return result;
  });
  if (!record) {
    send_error(id, failure);
    co_return;
  }
  spdlog::info("publish '{}' version {} by {}{}", path, record->version, m_client.describe(),
               request.token ? " (token " + std::to_string(*request.token) + ")" : "");
  send(protocol::encode_ok(id, {{"version", record->version}}));
}
asio::awaitable<void> Session::handle_read(std::uint64_t id, protocol::ReadRequest request) {
  Failure failure;
  const RootDir& root = m_host.root();
  int fd = -1;
  VersionRecord record;
  std::uint64_t size = 0;
  co_await m_host.offload().quick([&] {
    fd = open_published(root, request.path, record, size, failure);
    return 0;
  });
  if (fd < 0) {
    send_error(id, failure);
    co_return;
  }
  send(protocol::encode_ok(id, {{"path", request.path},
                                {"version", record.version},
                                {"size", size},
                                {"fd", true}}),
       fd);
}

asio::awaitable<void> Session::handle_wait(std::uint64_t id, protocol::WaitRequest request) {
  PendingGuard pending{m_pending_waits};
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> deadline;
  if (request.timeout) deadline = Clock::now() + *request.timeout;
  const RootDir& root = m_host.root();
  for (;;) {
    Failure failure;
    bool exists = false;
    const std::uint64_t seen = m_host.changes().generation();
    VersionRecord record = co_await m_host.offload().quick([&] {
      // Existence first: the version read after it is at least that of the
      // file seen, never the record of before a publish that just landed.
      exists = path_exists(root, request.path, failure);
      return read_version(root, request.path, failure);
    });
    if (failure) {
      send_error(id, failure);
      co_return;
    }
    bool ready = request.newer_than ? record.version > *request.newer_than : exists;
    if (ready) {
      send(protocol::encode_ok(id, {{"path", request.path}, {"version", record.version}}));
      co_return;
    }
    if (m_closing) co_return;  // the client left: nobody to answer
    if (deadline && Clock::now() >= *deadline) {
      send(protocol::encode_error(
          id, errc::timed_out,
          request.newer_than ? "timed out waiting for " + request.path + " to be newer than version " +
                                   std::to_string(*request.newer_than)
                             : "timed out waiting for " + request.path + " to exist"));
      co_return;
    }
    co_await m_host.changes().wait_for_change(deadline, seen);
  }
}

asio::awaitable<void> Session::handle_enqueue_begin(std::uint64_t id,
                                                    protocol::EnqueueBeginRequest request) {
  PendingGuard pending{m_pending_items};
  Failure failure;
  int writer = -1;
  const RootDir& root = m_host.root();
  std::uint64_t instance = m_host.instance_id();
  std::unique_ptr<StagedItem> item = co_await m_host.offload().quick([&] {
    std::shared_ptr<Spool> spool = Spool::open(root, request.queue, /*create=*/true, failure);
    std::unique_ptr<StagedItem> created;
    if (spool) created = StagedItem::create(spool, instance, failure);
    if (created) writer = created->writer_fd(failure);
    if (writer < 0) created.reset();
    return created;
  });
  if (!item) {
    send_error(id, failure);
    co_return;
  }
  std::uint64_t stage = m_next_stage++;
  m_items.emplace(stage, std::move(item));
  send(protocol::encode_ok(id, {{"stage", stage}, {"queue", request.queue}, {"fd", true}}), writer);
}

asio::awaitable<void> Session::handle_enqueue_commit(std::uint64_t id,
                                                     protocol::EnqueueCommitRequest request) {
  auto it = m_items.find(request.stage);
  if (it == m_items.end()) {
    send(protocol::encode_error(id, errc::not_found,
                                "no enqueue " + std::to_string(request.stage) + " in progress"));
    co_return;
  }
  std::shared_ptr<StagedItem> item(std::move(it->second));
  m_items.erase(it);
  Failure failure;
  std::optional<std::string> item_id = co_await m_host.offload().slow([&] {
    auto result = item->commit(failure);
    item.reset();
    return result;
  });
  if (!item_id) {
    send_error(id, failure);
    co_return;
  }
  send(protocol::encode_ok(id, {{"item", *item_id}}));
}

asio::awaitable<void> Session::handle_claim(std::uint64_t id, protocol::ClaimRequest request) {
  PendingGuard pending{m_pending_claims};
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> deadline;
  if (request.timeout) deadline = Clock::now() + *request.timeout;
  const RootDir& root = m_host.root();
  Backlogs& backlogs = m_host.backlogs();
  const std::uint64_t instance = m_host.instance_id();
  std::shared_ptr<Spool> spool;
  std::shared_ptr<Backlog> backlog;
  for (;;) {
    Failure failure;
    int reader = -1;
    const std::uint64_t seen = m_host.changes().generation();
    auto claim_one = [&] {
      if (!spool) {
        spool = Spool::open(root, request.queue, /*create=*/true, failure);
        if (spool) backlog = backlogs.of(request.queue, spool->new_dir());
      }
      std::unique_ptr<ClaimedItem> claimed;
      if (spool)
        claimed = claim_next(spool, backlog, backlogs.rescan_after(), instance,
                             failure);
      if (claimed) reader = claimed->reader_fd(failure);
      if (claimed && reader < 0) claimed.reset();  // returns it to new/
      if (spool && !claimed) backlogs.forget(request.queue, backlog);  // empty
      return claimed;
    };
    // Taking a remembered name is a few quick calls; listing new/ is not.
    std::shared_ptr<Backlog> known = backlog ? backlog : backlogs.find(request.queue);
    const bool lists = !known || known->needs_listing(Backlog::Clock::now(),
                                                      backlogs.rescan_after());
    std::unique_ptr<ClaimedItem> item;
    if (lists)
      item = co_await m_host.offload().slow(claim_one);
    else
      item = co_await m_host.offload().quick(claim_one);
    if (failure) {
      send_error(id, failure);
      co_return;
    }
    if (item) {
      if (m_closing) {
        ::close(reader);
        co_await m_host.offload().quick([&] {
          item.reset();  // nobody to process it: back to new/
          return 0;
        });
        co_return;
      }
      std::uint64_t claim = m_next_stage++;
      std::string item_id = item->id();
      m_claims.emplace(claim, Claim{std::move(item), request.queue});
      spdlog::debug("claim {}/{} by {}", request.queue, item_id,
                    m_client.describe());
      send(protocol::encode_ok(
               id, {{"claim", claim}, {"item", item_id}, {"fd", true}}),
           reader);
      co_return;
    }
    if (m_closing) co_return;
    if (deadline && Clock::now() >= *deadline) {
      send(protocol::encode_error(id, errc::timed_out,
                                  "no item in queue " + request.queue + " within the timeout"));
      co_return;
    }
    // Watched only now that the scan made the queue: look once more before
    // sleeping, for an item that came before the watch did.
    if (m_host.changes().watch(m_host.root().path() + "/" + request.queue + "/new")) continue;
    co_await m_host.changes().wait_for_change(deadline, seen);
  }
}

asio::awaitable<void> Session::finish_claim(std::uint64_t id, std::uint64_t claim, bool ack) {
  auto it = m_claims.find(claim);
  if (it == m_claims.end()) {
    if (auto lost = m_lost_claims.find(claim); lost != m_lost_claims.end()) {
      // Told already (claim_lost); the answer stays the same.
      send(protocol::encode_error(id, errc::lock_lost, lost->second));
      m_lost_claims.erase(lost);
      co_return;
    }
    send(protocol::encode_error(
        id, errc::not_found,
        "no claimed item " + std::to_string(claim) + " on this connection"));
    co_return;
  }
  std::shared_ptr<ClaimedItem> item(std::move(it->second.item));
  m_claims.erase(it);
  Failure failure;
  bool done = co_await m_host.offload().quick([&] {  // an unlink or a rename
    bool ok = ack ? item->ack(failure) : item->nack(failure);
    item.reset();
    return ok;
  });
  if (!done) {
    if (failure.code == errc::lock_lost)
      spdlog::warn("{} refused for {}: {}", ack ? "ack" : "nack",
                   m_client.describe(), failure.message);
    send_error(id, failure);
    co_return;
  }
  send(protocol::encode_ok(id));
}

// Publishes and enqueues the client never finished leave no trace, and the
// items it claimed go back to their queues; all of it off the loop.
asio::awaitable<void> Session::discard_stages() {
  if (m_stages.empty() && m_items.empty() && m_claims.empty()) co_return;
  auto stages = std::move(m_stages);
  auto items = std::move(m_items);
  auto claims = std::move(m_claims);
  co_await m_host.offload().slow([&] {
    stages.clear();
    items.clear();
    claims.clear();
    return 0;
  });
}

asio::awaitable<void> Session::verify_claims() {
  std::vector<std::pair<std::uint64_t, std::shared_ptr<ClaimedItem>>> claims;
  for (const auto& [claim, held] : m_claims)
    claims.emplace_back(claim, held.item);
  for (auto& [claim, item] : claims) {
    Failure failure;
    const bool ours = co_await m_host.offload().quick(
        [&] { return item->still_ours(failure); });
    auto it = m_claims.find(claim);
    // Only judge what we checked: an ack or nack may have taken it meanwhile.
    if (ours || it == m_claims.end() || it->second.item != item) continue;
    const std::string queue = it->second.queue;
    item->abandon();  // not ours to give back: it may be another consumer's now
    m_claims.erase(it);
    m_lost_claims.emplace(claim, failure.message);
    spdlog::error("claim of {} by {} lost: {}", item->id(), m_client.describe(),
                  failure.message);
    send(protocol::encode_line({{"event", "claim_lost"},
                                {"claim", claim},
                                {"queue", queue},
                                {"item", item->id()},
                                {"message", failure.message}}));
    // Closing our descriptor off the loop (a network filesystem may block).
    co_await m_host.offload().quick([&] {
      item.reset();
      return 0;
    });
  }
}

void Session::lock_revoking(const std::string& name, std::uint64_t token,
                            std::chrono::milliseconds revoke_in, const std::string& why) {
  send(protocol::encode_line({{"event", "revoking"},
                              {"name", name},
                              {"token", token},
                              {"revoke_in_ms", revoke_in.count()},
                              {"message", why}}));
}

void Session::lock_lost(const std::string& name, std::uint64_t token, const std::string& why) {
  m_names.erase(name);
  m_lost.insert(name);
  send(protocol::encode_line(
      {{"event", "lock_lost"}, {"name", name}, {"token", token}, {"message", why}}));
}

}  // namespace baton::daemon
