#include "daemon/server.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "baton/version.hpp"
#include "daemon/change_notifier.hpp"
#include "daemon/lock_table.hpp"
#include "daemon/root_dir.hpp"
#include "daemon/lock_waiter.hpp"
#include "daemon/offload.hpp"
#include "daemon/root_check.hpp"
#include "daemon/session.hpp"
#include "daemon/socket_guard.hpp"

namespace baton::daemon {
namespace {

namespace asio = boost::asio;
using Protocol = asio::local::stream_protocol;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);

std::uint64_t random_instance_id() {
  std::uint64_t id = 0;
  while (id == 0) {
    if (::getrandom(&id, sizeof id, 0) != sizeof id)
      id = static_cast<std::uint64_t>(::getpid()) << 32 ^
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return id;
}

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// How long after --shutdown-grace the daemon may take to flush replies and
// exit before a watchdog ends the process whatever the loop is doing.
constexpr auto k_exit_margin = std::chrono::milliseconds(800);
// How long `status` may wait for the filesystem (the lock directory scan).
constexpr auto k_status_budget = std::chrono::milliseconds(700);

// Ends the process now, without waiting for filesystem calls stuck in the
// kernel. On a network mount close(2) is a round trip too (NFS writes back,
// FUSE sends FLUSH), and the last close of an exiting process cannot be
// interrupted any more. So each descriptor under ROOT is closed on a thread
// of its own first: the close takes it out of the table at once, and the
// SIGKILL that _exit sends to that thread ends a killable wait (NFS). A
// FUSE FLUSH is waited for uninterruptibly (fs/fuse/file.c forces it): with
// a stopped GlusterFS client the process then lingers, its socket removed
// and its main thread gone, until the client answers. The kernel drops our
// OFD locks with the descriptors.
[[noreturn]] void exit_now(const std::string& root, const std::string& socket_path) {
  ::unlink(socket_path.c_str());
  std::vector<int> fds;
  if (DIR* dir = ::opendir("/proc/self/fd")) {  // procfs: never the mount
    while (dirent* item = ::readdir(dir)) {
      char* end = nullptr;
      long fd = std::strtol(item->d_name, &end, 10);
      if (*end != '\0' || fd < 0) continue;
      char target[PATH_MAX];
      std::string link = std::string("/proc/self/fd/") + item->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      std::string_view path(target, static_cast<std::size_t>(n));
      if (path.starts_with(root) && (path.size() == root.size() || path[root.size()] == '/'))
        fds.push_back(static_cast<int>(fd));
    }
    ::closedir(dir);
  }
  auto closed = std::make_shared<std::atomic<std::size_t>>(0);
  for (int fd : fds) {
    try {
      std::thread([fd, closed] {
        ::close(fd);
        ++*closed;
      }).detach();
    } catch (const std::system_error&) {
      break;  // out of threads: the rest close at exit, as before
    }
  }
  // A healthy mount flushes in microseconds: give it a moment, so that the
  // server sees the unlock now rather than at the next reconnect.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (*closed < fds.size() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // A close still blocked has at least taken its descriptor out of the table.
  for (int fd : fds)
    for (int i = 0; i < 50 && ::fcntl(fd, F_GETFD) != -1; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ::_exit(0);
}

// Ends the process at a deadline unless disarmed first. The exit must not
// wait for a thread stuck in the kernel (a hung FUSE or NFS mount): _exit
// leaves them, and the kernel drops our OFD locks with the descriptors.
class ExitWatchdog {
 public:
  ~ExitWatchdog() { disarm(); }

  void arm(std::chrono::steady_clock::time_point deadline, std::string root,
           std::string socket_path) {
    if (m_thread.joinable()) return;
    m_thread = std::thread([this, deadline, root = std::move(root),
                            socket_path = std::move(socket_path)] {
      std::unique_lock lock(m_mutex);
      if (m_wake.wait_until(lock, deadline, [this] { return m_disarmed; })) return;
      spdlog::error("still not stopped {} ms after the grace (a filesystem call is stuck?): "
                    "exiting without waiting for it",
                    k_exit_margin.count());
      exit_now(root, socket_path);
    });
  }

  void disarm() {
    {
      std::lock_guard lock(m_mutex);
      m_disarmed = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) m_thread.join();
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_disarmed = false;  // guarded by m_mutex
  std::thread m_thread;
};

std::string real_path(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) ? resolved : path;
}

// Warnings that can come a thousand a second (refused connections): the
// first of a burst is logged at once, the rest once a second as a count.
class BurstLog {
 public:
  BurstLog(asio::io_context& io, std::string what, std::string more)
      : m_timer(io), m_what(std::move(what)), m_more(std::move(more)) {}

  void note(const std::string& detail) {
    if (m_active) {
      ++m_count;
      m_last = detail;
      return;
    }
    spdlog::warn("{}: {}", m_what, detail);
    m_active = true;
    wait();
  }

 private:
  void wait() {
    m_timer.expires_after(std::chrono::seconds(1));
    m_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || m_count == 0) {
        m_active = false;
        return;
      }
      spdlog::warn("{} {} in the last 1 s (last: {})", m_count, m_more, m_last);
      m_count = 0;
      wait();
    });
  }

  asio::steady_timer m_timer;
  std::string m_what, m_more;
  bool m_active = false;  // a burst is on: count, do not log
  std::size_t m_count = 0;
  std::string m_last;
};

class Daemon final : public SessionHost {
 public:
  Daemon(const DaemonOptions& options, int locks_dir_fd, bool local_fs)
      : m_options(options),
        m_root(options.root, !local_fs),
        m_instance(random_instance_id()),
        m_offload(4, local_fs),
        m_locks(m_io.get_executor(), locks_dir_fd, options.root + "/.baton/locks", m_offload,
                LockTableConfig{options.pod_name, options.node_name, m_instance,
                                options.max_local_handovers, 256, !local_fs}),
        m_changes(m_io.get_executor(), options.root + "/" + k_versions_dir,
                  options.poll_interval),
        m_backlogs(options.poll_interval),
        m_acceptor(m_io),
        m_signals(m_io, SIGTERM, SIGINT),
        m_started(std::chrono::steady_clock::now()) {
    m_limits.max_message_bytes = options.max_message_bytes;
    m_limits.max_locks = options.max_locks_per_session;
    m_limits.max_send_queue_bytes = options.max_send_queue_bytes;
    m_limits.idle_timeout = options.idle_timeout;
    m_budget->limit = std::max(options.max_buffered_bytes, 4 * options.max_message_bytes);
    protocol::Greeting greeting;
    greeting.server = std::string("batond ") + k_version;
    greeting.pod = options.pod_name;
    greeting.node = options.node_name;
    greeting.capabilities = {"lock", "shared", "fencing", "lock_lost", "claim_lost", "status",
                             "publish", "read", "wait", "queue", "revoking"};
    greeting.limits = {options.max_message_bytes, options.max_locks_per_session,
                       options.max_connections};
    m_greeting = protocol::encode_greeting(greeting);
  }

  ~Daemon() {
    if (m_reserve_fd >= 0) ::close(m_reserve_fd);
  }

  int run() {
    boost::system::error_code ec;
    m_acceptor.open(Protocol(), ec);
    if (!ec) m_acceptor.bind(Protocol::endpoint(m_options.socket_path), ec);
    if (!ec) ::chmod(m_options.socket_path.c_str(), m_options.socket_mode);
    if (!ec) m_acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::critical("cannot listen on {}: {}", m_options.socket_path, ec.message());
      return 1;
    }
    spawn(accept_loop(), "accept");
    spawn(verify_loop(), "lock check");
    spawn(m_changes.run(), "change notifier");
    m_signals.async_wait([this](const boost::system::error_code& error, int signal) {
      if (error) return;
      spdlog::info("{} received, shutting down", ::strsignal(signal));
      begin_shutdown();
    });
    spdlog::info("batond {} serving {} on {} as pod {} on node {}", k_version,
                 m_options.root, m_options.socket_path, m_options.pod_name, m_options.node_name);
    m_io.run();
    m_offload.stop();
    // Joining the pool or a lock waiter stuck in the kernel would hang the
    // exit until the filesystem answers (15 s and more on a stopped FUSE
    // client): leave them to the kernel instead.
    // On a network root even closing a file may hang: let exit_now do it.
    if (std::size_t stuck = m_offload.in_flight() + LockWaiter::running()) {
      spdlog::warn("stopped with {} filesystem call(s) still in flight: exiting without "
                   "waiting for them",
                   stuck);
      exit_now(m_options.root, m_options.socket_path);
    }
    if (!m_offload.inline_quick_calls()) {
      spdlog::info("stopped");
      exit_now(m_options.root, m_options.socket_path);
    }
    spdlog::info("stopped");
    return 0;
  }

  // SessionHost
  LockTable& locks() override { return m_locks; }
  Offload& offload() override { return m_offload; }
  const RootDir& root() const override { return m_root; }
  ChangeNotifier& changes() override { return m_changes; }
  Backlogs& backlogs() override { return m_backlogs; }
  std::uint64_t instance_id() const override { return m_instance; }
  const SessionLimits& session_limits() const override { return m_limits; }
  std::shared_ptr<BufferBudget> buffer_budget() override { return m_budget; }
  const std::string& greeting() const override { return m_greeting; }
  nlohmann::json server_status() const override {
    auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - m_started);
    return {{"server", std::string("batond ") + k_version},
            {"pod", m_options.pod_name},
            {"node", m_options.node_name},
            {"root", m_options.root},
            {"pid", ::getpid()},
            {"uptime_ms", uptime.count()},
            {"sessions", m_sessions.size()},
            {"fs_calls_in_flight", m_offload.in_flight()}};
  }
  std::chrono::milliseconds status_budget() const override { return k_status_budget; }
  void session_did_work() override { m_had_workers = true; }

 private:
  template <typename Awaitable>
  void spawn(Awaitable task, std::string what) {
    asio::co_spawn(m_io, std::move(task), [what = std::move(what)](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& error) {
        spdlog::error("{}: internal error: {}", what, error.what());
      }
    });
  }

  asio::awaitable<void> accept_loop() {
    std::uint64_t next_session = 1;
    for (;;) {
      auto [ec, socket] = co_await m_acceptor.async_accept(k_tuple);
      if (ec == asio::error::operation_aborted || !m_acceptor.is_open()) break;
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
        refuse_for_lack_of_descriptors();
        continue;
      }
      if (ec) {
        spdlog::warn("accept: {}", ec.message());
        asio::steady_timer pause(m_io, std::chrono::milliseconds(50));
        co_await pause.async_wait(k_tuple);
        continue;
      }
      ClientInfo client;
      client.session = next_session++;
      ucred credentials{};
      socklen_t size = sizeof credentials;
      if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0) {
        client.pid = credentials.pid;
        client.uid = credentials.uid;
      }
      if (auto refusal = refuse(client)) {
        std::string line = protocol::encode_error(std::nullopt, refusal->first, refusal->second);
        m_refusals.note(client.describe() + ": " + refusal->second);
        // Never waits: the line is small and the socket is new, but a refused
        // client must not be able to stall the accept loop either.
        [[maybe_unused]] ssize_t ignored = ::send(socket.native_handle(), line.data(), line.size(),
                                                  MSG_NOSIGNAL | MSG_DONTWAIT);
        continue;
      }
      auto session = std::make_shared<Session>(std::move(socket), client, *this);
      m_sessions.insert(session);
      if (client.pid > 0) ++m_per_process[client.pid];
      asio::co_spawn(m_io, session->run(), [this, session](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& error) {
            spdlog::error("{}: internal error: {}", session->client_info().describe(),
                          error.what());
          }
          m_locks.release_all(*session);
        }
        m_sessions.erase(session);
        if (int pid = session->client_info().pid; pid > 0 && --m_per_process[pid] == 0)
          m_per_process.erase(pid);
        session_ended(*session);
      });
    }
  }

  // Out of descriptors: the waiting client would hang unanswered, so spend
  // the one we keep in reserve to accept it, tell it why, and close it.
  void refuse_for_lack_of_descriptors() {
    if (m_reserve_fd >= 0) ::close(std::exchange(m_reserve_fd, -1));
    int fd = ::accept4(m_acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      std::string line = protocol::encode_error(std::nullopt, errc::limit_exceeded,
                                                "daemon is out of file descriptors");
      [[maybe_unused]] ssize_t ignored = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
    }
    auto now = std::chrono::steady_clock::now();
    if (now - m_last_fd_warning > std::chrono::seconds(10)) {
      m_last_fd_warning = now;
      spdlog::warn("out of file descriptors: refusing connections (raise the limit or "
                   "lower --max-connections)");
    }
    m_reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  // Why CLIENT may not connect, or nullopt. At the connection limit a
  // connection that holds and waits for nothing is closed to make room, so
  // that a flood of silent connections cannot lock out a probe.
  std::optional<std::pair<errc, std::string>> refuse(const ClientInfo& client) {
    if (!m_options.allow_uids.empty() &&
        std::find(m_options.allow_uids.begin(), m_options.allow_uids.end(), client.uid) ==
            m_options.allow_uids.end())
      return std::pair{errc::permission_denied,
                       "uid " + std::to_string(client.uid) + " is not allowed"};
    if (client.pid > 0) {
      auto it = m_per_process.find(client.pid);
      if (it != m_per_process.end() && it->second >= m_options.max_connections_per_process)
        return std::pair{errc::limit_exceeded,
                         "too many connections from pid " + std::to_string(client.pid) + " (" +
                             std::to_string(m_options.max_connections_per_process) +
                             ", --max-connections-per-process)"};
    }
    if (m_sessions.size() >= m_options.max_connections && !make_room())
      return std::pair{errc::limit_exceeded,
                       "too many connections (" + std::to_string(m_options.max_connections) +
                           "), all of them busy"};
    return std::nullopt;
  }

  // Closes one connection that holds and waits for nothing: one that never
  // sent a request if any (oldest first), else the one idle longest. False
  // if every open connection is busy.
  bool make_room() {
    std::size_t open = 0;
    Session* victim = nullptr;
    auto rank = [](const Session& s) { return std::pair{s.spoke(), s.last_active()}; };
    for (const auto& session : m_sessions) {
      if (session->closing()) continue;
      ++open;
      if (session->busy()) continue;
      if (!victim || rank(*session) < rank(*victim)) victim = session.get();
    }
    if (open < m_options.max_connections) return true;  // some are closing already
    if (!victim) return false;
    m_evictions.note(victim->client_info().describe() +
                     (victim->spoke() ? " (idle)" : " (sent nothing)"));
    victim->close_with_error(errc::limit_exceeded,
                             "connection closed to make room for a new one (" +
                                 std::to_string(m_options.max_connections) +
                                 " connections, --max-connections)");
    return true;
  }

  void session_ended(const Session& session) {
    if (!m_options.exit_when_idle || m_stopping || !m_had_workers) return;
    (void)session;
    bool any_left = std::any_of(m_sessions.begin(), m_sessions.end(),
                                [](const auto& s) { return s->did_work(); });
    if (!any_left) {
      spdlog::info("last client gone, exiting (--exit-when-idle)");
      begin_shutdown();
    }
  }

  // Re-verifies held locks and claimed items, so a holder hears of a loss
  // within an interval.
  asio::awaitable<void> verify_loop() {
    asio::steady_timer timer(m_io);
    while (!m_stopping) {
      timer.expires_after(m_options.lock_check_interval);
      auto [ec] = co_await timer.async_wait(k_tuple);
      if (ec || m_stopping) break;
      co_await m_locks.verify_held();
      // Claimed queue items, checked the same way (a copy: sessions may end).
      for (const auto& session :
           std::vector(m_sessions.begin(), m_sessions.end()))
        co_await session->verify_claims();
    }
  }

  // Holders are told at once that their locks go at the end of the grace,
  // and keep them (and the OFD locks) until they release or the grace ends:
  // a command that stops within the grace never overlaps the next holder.
  void begin_shutdown() {
    if (m_stopping) return;
    m_stopping = true;
    m_shutdown_deadline = std::chrono::steady_clock::now() + m_options.shutdown_grace;
    m_watchdog.arm(m_shutdown_deadline + k_exit_margin, m_options.root, m_options.socket_path);
    boost::system::error_code ignored;
    m_acceptor.close(ignored);
    m_signals.cancel(ignored);
    m_locks.stop_granting();
    m_locks.announce_revocation(
        m_options.shutdown_grace,
        "batond is shutting down: the lock is revoked in " +
            std::to_string(m_options.shutdown_grace.count()) + " ms unless released first");
    m_changes.stop();
    spawn(shutdown(), "shutdown");
  }

  // Waits for the holders until the grace ends; then everything is released
  // and they are told so; sessions get a moment to flush that, then we stop.
  asio::awaitable<void> shutdown() {
    asio::steady_timer timer(m_io);
    while (m_locks.has_holders() && std::chrono::steady_clock::now() < m_shutdown_deadline) {
      timer.expires_after(std::chrono::milliseconds(10));
      co_await timer.async_wait(k_tuple);
    }
    m_locks.revoke_all("daemon is shutting down");
    for (const auto& session : m_sessions) session->close_after_flush();
    const auto flush_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (!m_sessions.empty() && std::chrono::steady_clock::now() < flush_deadline) {
      timer.expires_after(std::chrono::milliseconds(5));
      co_await timer.async_wait(k_tuple);
    }
    m_io.stop();
  }

  ExitWatchdog m_watchdog;  // first: destroyed last, so it also bounds the destructors
  const DaemonOptions& m_options;
  asio::io_context m_io{1};
  RootDir m_root;
  std::uint64_t m_instance;
  Offload m_offload;
  LockTable m_locks;
  ChangeNotifier m_changes;
  Backlogs m_backlogs;
  Protocol::acceptor m_acceptor;
  asio::signal_set m_signals;
  SessionLimits m_limits;
  std::shared_ptr<BufferBudget> m_budget = std::make_shared<BufferBudget>();
  std::map<int, std::size_t> m_per_process;  // open sessions by peer pid (> 0)
  BurstLog m_refusals{m_io, "refused a connection", "more connections refused"};
  BurstLog m_evictions{m_io, "closed a connection to make room for a new one",
                       "more connections closed to make room"};
  std::string m_greeting;
  std::set<std::shared_ptr<Session>> m_sessions;
  std::chrono::steady_clock::time_point m_started;
  bool m_stopping = false;
  std::chrono::steady_clock::time_point m_shutdown_deadline;
  int m_reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // see refuse_for_lack_of_descriptors
  std::chrono::steady_clock::time_point m_last_fd_warning;
  bool m_had_workers = false;
};

}  // namespace

// Raises the descriptor limit to its hard maximum, then keeps connections
// to a share of it: each session may open lock files, staging files and
// queue items too, and those must not fail because sockets took them all.
void fit_connections_to_descriptor_limit(DaemonOptions& options) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur == RLIM_INFINITY) return;
  auto fds = static_cast<std::size_t>(limit.rlim_cur);
  std::size_t headroom = std::max<std::size_t>(32, fds / 2);
  std::size_t fit = fds > headroom ? fds - headroom : 1;
  if (options.max_connections > fit) {
    spdlog::warn("--max-connections {} lowered to {}: the descriptor limit is {}",
                 options.max_connections, fit, fds);
    options.max_connections = fit;
  }
}

int run_daemon(const DaemonOptions& options_in) {
  DaemonOptions options = options_in;
  options.root = real_path(options.root);
  fit_connections_to_descriptor_limit(options);

  RootReport report = judge_mount(find_mount(read_file("/proc/self/mountinfo"), options.root));
  if (!report.refusal.empty()) {
    if (!options.allow_local_locks) {
      spdlog::critical("refusing root {}: {} (use --allow-local-locks to run anyway)",
                       options.root, report.refusal);
      return 1;
    }
    spdlog::warn("root {}: {} (--allow-local-locks given)", options.root, report.refusal);
  } else if (!report.warning.empty()) {
    spdlog::info("{}", report.warning);
  }
  if (std::string error = prepare_root(options.root); !error.empty()) {
    spdlog::critical("self-check failed: {}", error);
    return 1;
  }
  std::string locks_dir = options.root + "/.baton/locks";
  int dir_fd = ::open(locks_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    spdlog::critical("cannot open {}: {}", locks_dir, std::strerror(errno));
    return 1;
  }

  std::string error;
  auto guard = SocketGuard::claim(options.socket_path, error);
  if (!guard) {
    spdlog::critical("{}", error);
    ::close(dir_fd);
    return 1;
  }
  install_wait_interrupt_handler();
  int code;
  {
    Daemon daemon(options, dir_fd, report.local_filesystem);
    code = daemon.run();
  }
  ::close(dir_fd);
  return code;
}

}  // namespace baton::daemon
