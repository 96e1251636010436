#include "cli/supervisor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "cli/child_process.hpp"
#include "cli/diagnostics.hpp"
#include "cli/exit_codes.hpp"
#include "cli/process_tree.hpp"
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

// Makes PGRP the foreground group of TERMINAL_FD. SIGTTOU is blocked
// meanwhile: baton may be in the background when it takes the terminal back.
void set_foreground(int terminal_fd, pid_t pgrp) noexcept {
  sigset_t ttou;
  sigset_t previous;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  ::sigprocmask(SIG_BLOCK, &ttou, &previous);
  ::tcsetpgrp(terminal_fd, pgrp);
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
}

bool is_terminating(int signal_number) noexcept {
  return signal_number == SIGTERM || signal_number == SIGINT ||
         signal_number == SIGHUP || signal_number == SIGQUIT;
}

class Supervision {
 public:
  Supervision(Client& client, Lock* lock, CommandGuard& guard,
              SignalForwarder& signals, const SuperviseOptions& options)
      : m_client(client),
        m_lock(lock),
        m_guard(guard),
        m_child(guard.command()),
        m_signals(signals),
        m_options(options) {}

  int run() {
    m_fds[0] = {m_signals.fd(), POLLIN, 0};
    m_fds[1] = {m_client.native_handle(), POLLIN, 0};
    m_fds[2] = {m_guard.event_fd(), POLLIN, 0};
    while (!m_guard.exited()) {
      int ready = ::poll(m_fds, 3, poll_timeout(m_kill_deadline));
      if (ready < 0) {
        if (errno == EINTR) continue;
        return fail("poll", errno);
      }
      // The socket first: if the lock went while CMD was ending, say so.
      if (m_fds[1].revents != 0 && check_lock()) {
        m_fds[1].fd = -1;  // a closed socket would stay readable forever
      }
      if (m_fds[2].revents != 0) handle_events();
      if (m_fds[0].revents != 0) handle_signals();
      if (!m_guard.exited() && m_kill_deadline &&
          Clock::now() >= *m_kill_deadline) {
        if (!m_status)
          print_error(
              "%s (pid %d) still running %s s after SIGTERM; killing it and "
              "what it started",
              m_options.command_name.c_str(), static_cast<int>(m_child),
              format_seconds(m_options.kill_after).c_str());
        else
          print_error(
              "processes started by %s (pid %d) still running %s s after "
              "SIGTERM; killing them",
              m_options.command_name.c_str(), static_cast<int>(m_child),
              format_seconds(m_options.kill_after).c_str());
        m_guard.kill();
        m_kill_deadline.reset();
      }
    }
    handle_events();  // CMD's status may still be in the pipe
    give_terminal_back();
    if (!m_status) {
      // The guard died first (killed): CMD died with it (PR_SET_PDEATHSIG),
      // and baton, a subreaper too, inherited the rest of the tree.
      print_error("the guard of %s (pid %d) died (%s); killing what is left",
                  m_options.command_name.c_str(), static_cast<int>(m_child),
                  describe_status(m_guard.exit_status()).c_str());
      kill_own_tree();
      return k_exit_internal;
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
    m_guard.terminate();
    if (!m_kill_deadline) m_kill_deadline = Clock::now() + m_options.kill_after;
    return true;
  }

  void handle_events() {
    GuardEvent event;
    while (m_guard.read_event(event)) {
      if (event.kind == GuardEvent::exited) {
        m_status = event.value;
        give_terminal_back();
        // The guard sent SIGTERM to what CMD left running.
        if (event.extra != 0 && !m_kill_deadline)
          m_kill_deadline = Clock::now() + m_options.kill_after;
      } else if (event.kind == GuardEvent::stopped) {
        stop_with_command();
      }
    }
    if (m_guard.eof()) m_fds[2].fd = -1;
  }

  // Forwards what should be, follows SIGCONT, and reaps on SIGCHLD.
  void handle_signals() {
    signalfd_siginfo info;
    bool child_signalled = false;
    while (m_signals.read(info)) {
      const int signal_number = static_cast<int>(info.ssi_signo);
      if (signal_number == SIGCHLD) {
        child_signalled = true;
      } else if (signal_number == SIGCONT) {
        continue_command();
      } else if (SignalForwarder::should_forward(info)) {
        if (!m_status)
          ::kill(m_child, signal_number);
        else if (is_terminating(signal_number))
          m_guard.kill();  // CMD is gone; what it left is being stopped
      }
    }
    if (child_signalled) reap_children();
  }

  // Reaps every child that ended: the guard, and, as PID 1 of a container
  // or once the guard died, orphans, which would otherwise stay zombies.
  void reap_children() {
    for (;;) {
      int status = 0;
      pid_t done = ::waitpid(-1, &status, WNOHANG);
      if (done > 0) {
        if (done == m_guard.pid()) m_guard.set_exited(status);
        continue;
      }
      if (done < 0 && errno == EINTR) continue;
      return;  // 0: the others still run; ECHILD: none left
    }
  }

  // CMD stopped (Ctrl-Z, or SIGTTIN in the background). On a terminal, do
  // as the shell expects of a job: take the terminal back and stop too;
  // `fg` continues baton, which continues CMD. Without a terminal, nobody
  // would continue baton, and it must keep watching the lock: CMD stays
  // stopped until someone continues it.
  void stop_with_command() {
    if (m_options.terminal_fd < 0 || m_status) return;
    give_terminal_back();
    // Discarded by the kernel in an orphaned process group (no shell to
    // continue us), and ignored if baton was started ignoring it.
    ::raise(SIGTSTP);
    continue_command();
  }

  // baton was continued (or started in the background and brought to the
  // foreground): give CMD the terminal if baton has it, and continue CMD.
  void continue_command() {
    if (m_status) return;
    if (m_fds[1].fd >= 0 && check_lock()) m_fds[1].fd = -1;
    if (m_options.terminal_fd >= 0 && in_foreground(m_options.terminal_fd))
      set_foreground(m_options.terminal_fd, m_child);
    ::kill(-m_child, SIGCONT);
  }

  void give_terminal_back() {
    if (m_options.terminal_fd >= 0 &&
        ::tcgetpgrp(m_options.terminal_fd) == m_child)
      set_foreground(m_options.terminal_fd, ::getpgrp());
  }

  // Kills and reaps every descendant of baton; as a subreaper, baton sees
  // each orphan come back as its child, so none is missed.
  void kill_own_tree() {
    signal_tree(::getpid(), -1, SIGKILL);
    for (;;) {
      int status = 0;
      pid_t done = ::waitpid(-1, &status, 0);
      if (done > 0) {
        signal_tree(::getpid(), -1, SIGKILL);
        continue;
      }
      if (done < 0 && errno == EINTR) continue;
      return;
    }
  }

  static std::string describe_status(int status) {
    if (WIFSIGNALED(status))
      return std::string("signal ") + std::to_string(WTERMSIG(status));
    return "exit " + std::to_string(WEXITSTATUS(status));
  }

  // Nothing sensible is left to do: CMD must not run on unsupervised.
  int fail(const char* what, int error) {
    print_error("%s failed: %s; killing %s (pid %d)", what,
                std::strerror(error), m_options.command_name.c_str(),
                static_cast<int>(m_child));
    m_guard.kill_and_wait();
    give_terminal_back();
    return k_exit_internal;
  }

  Client& m_client;
  Lock* m_lock;  // null: CMD holds no lock, only what the connection holds
  CommandGuard& m_guard;
  pid_t m_child;  // CMD, and its process group
  SignalForwarder& m_signals;
  const SuperviseOptions& m_options;
  pollfd m_fds[3]{};  // signals, the daemon's socket, the guard's events
  std::optional<int> m_status;  // CMD's wait status, once it ended
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

int job_control_terminal() noexcept {
  const pid_t session = ::getsid(0);
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
    if (::tcgetpgrp(fd) >= 0 && ::tcgetsid(fd) == session) return fd;
  }
  return -1;
}

bool in_foreground(int terminal_fd) noexcept {
  return ::tcgetpgrp(terminal_fd) == ::getpgrp();
}

int supervise(Client& client, Lock* lock, CommandGuard& guard,
              SignalForwarder& signals, const SuperviseOptions& options) {
  return Supervision(client, lock, guard, signals, options).run();
}

}  // namespace baton::cli
