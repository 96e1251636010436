#include "cli/supervisor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "cli/child_process.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/time_format.hpp"

namespace baton::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds until DEADLINE for poll(2): -1 without one, 0 once past.
int poll_timeout(const std::optional<Clock::time_point>& deadline) {
  if (!deadline) return -1;
  auto left =
      std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

class Supervision {
 public:
  Supervision(Client& client, Lock* lock, pid_t child, SignalForwarder& signals,
              const SuperviseOptions& options)
      : m_client(client),
        m_lock(lock),
        m_child(child),
        m_signals(signals),
        m_options(options) {}

  int run() {
    pollfd fds[2] = {{m_signals.fd(), POLLIN, 0},
                     {m_client.native_handle(), POLLIN, 0}};
    while (!m_status) {
      int ready = ::poll(fds, 2, poll_timeout(m_kill_deadline));
      if (ready < 0) {
        if (errno == EINTR) continue;
        return fail("poll", errno);
      }
      // The socket first: if the lock went while CMD was ending, say so.
      if (fds[1].revents != 0 && check_lock()) {
        fds[1].fd = -1;  // a closed socket would stay readable forever
      }
      if (fds[0].revents != 0) handle_signals();
      if (!m_status && m_kill_deadline && Clock::now() >= *m_kill_deadline) {
        print_error("%s (pid %d) still running %s s after SIGTERM; killing it",
                    m_options.command_name.c_str(), static_cast<int>(m_child),
                    format_seconds(m_options.kill_after).c_str());
        ::kill(m_child, SIGKILL);
        m_kill_deadline.reset();
      }
    }
    return m_lost ? k_exit_lock_lost : exit_code_from_status(*m_status);
  }

 private:
  // Reads the daemon's events. Returns true once the lock (or, without
  // one, the connection) is gone.
  bool check_lock() {
    std::error_code ec = m_client.process_events();
    std::error_code reason = m_lock ? m_lock->lost_reason() : std::error_code();
    std::string held_message;  // the daemon's word on a lost claimed item
    if (!reason && m_options.lost) reason = m_options.lost(held_message);
    if (!reason && ec) reason = ec;
    if (!reason && (!m_lock || !m_lock->lost())) return false;
    if (!reason) reason = m_lock->lost_reason();
    m_lost = true;
    print_error("%s lost: %s; stopping %s (pid %d)", m_options.held.c_str(),
                held_message.empty() ? describe_loss(m_lock, reason).c_str()
                                     : printable(held_message).c_str(),
                m_options.command_name.c_str(), static_cast<int>(m_child));
    ::kill(m_child, SIGTERM);
    m_kill_deadline = Clock::now() + m_options.kill_after;
    return true;
  }

  // Forwards what should be, and reaps CMD on SIGCHLD.
  void handle_signals() {
    signalfd_siginfo info;
    bool child_signalled = false;
    while (m_signals.read(info)) {
      if (static_cast<int>(info.ssi_signo) == SIGCHLD) {
        child_signalled = true;
      } else if (SignalForwarder::should_forward(info)) {
        ::kill(m_child, static_cast<int>(info.ssi_signo));
      }
    }
    if (child_signalled) reap_children();
  }

  // Reaps every child that ended, not only CMD: as PID 1 of a container,
  // baton also inherits CMD's orphans, which would otherwise stay zombies.
  void reap_children() {
    for (;;) {
      int status = 0;
      pid_t done = ::waitpid(-1, &status, WNOHANG);
      if (done > 0) {
        if (done == m_child) m_status = status;
        continue;
      }
      if (done < 0 && errno == EINTR) continue;
      return;  // 0: the others still run; ECHILD: none left
    }
  }

  // Nothing sensible is left to do: CMD must not run on unsupervised.
  int fail(const char* what, int error) {
    print_error("%s failed: %s; killing %s (pid %d)", what,
                std::strerror(error), m_options.command_name.c_str(),
                static_cast<int>(m_child));
    ::kill(m_child, SIGKILL);
    int status = 0;
    std::error_code ignored;
    wait_child(m_child, true, status, ignored);
    return k_exit_internal;
  }

  Client& m_client;
  Lock* m_lock;  // null: CMD holds no lock, only what the connection holds
  pid_t m_child;
  SignalForwarder& m_signals;
  const SuperviseOptions& m_options;
  std::optional<int> m_status;
  bool m_lost = false;
  std::optional<Clock::time_point> m_kill_deadline;
};

}  // namespace

std::string describe_loss(const Lock* lock, const std::error_code& reason) {
  if (lock && !lock->lost_message().empty())
    return printable(lock->lost_message());
  if (reason == errc::connection_lost)
    return "the connection to batond closed (the daemon stopped or died)";
  if (reason == errc::lock_lost) return "batond reported it lost";
  return reason.message();
}

int supervise(Client& client, Lock* lock, pid_t child, SignalForwarder& signals,
              const SuperviseOptions& options) {
  return Supervision(client, lock, child, signals, options).run();
}

}  // namespace baton::cli
