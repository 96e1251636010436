// Signals in `baton run`. While baton connects and waits for the lock, a
// terminating signal ends it at once (closing the connection cancels the
// wait). Once CMD runs, the same signals are passed on to CMD instead.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>

#include <array>
#include <system_error>

namespace baton::cli {

// The signals `baton run` forwards to CMD.
inline constexpr std::array<int, 6> k_forwarded_signals{
    SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// Records the dispositions baton started with and, for each forwarded signal
// that was not ignored, installs a handler that exits at once: by the signal
// itself, or with 128+N where the default action does not apply (PID 1 of a
// container). Ignores SIGPIPE. Call once, first thing in `baton run`.
void exit_on_signals_while_waiting() noexcept;

// FD (a terminal) has an unfinished status line: the exit handler ends it
// with a newline first. -1: none.
void set_open_status_line(int fd) noexcept;

// Restores, in a forked child before exec, what CMD should start with: the
// dispositions baton started with (ignored signals stay ignored, as under
// nohup or flock) and an empty signal mask. Async-signal-safe.
void reset_signals_in_child() noexcept;

// Receives the forwarded signals and SIGCHLD through a signalfd, so the
// supervisor can poll(2) for them next to the daemon's socket.
class SignalForwarder {
 public:
  SignalForwarder() = default;
  ~SignalForwarder();
  SignalForwarder(const SignalForwarder&) = delete;
  SignalForwarder& operator=(const SignalForwarder&) = delete;

  // Blocks the forwarded signals, SIGCHLD and SIGCONT, opens the signalfd
  // (non-blocking, close-on-exec), then puts back the dispositions baton
  // started with (SIGCHLD at its default, so that CMD can be waited for).
  // Call before fork(), so no signal is lost in between.
  std::error_code open() noexcept;

  int fd() const noexcept { return m_fd; }

  // The next pending signal, if any. Never blocks; retries EINTR.
  bool read(signalfd_siginfo& info) noexcept;

  // Whether to pass INFO on to CMD: a forwarded signal that baton was not
  // started ignoring. CMD is in a process group of its own, so signals the
  // terminal sends to baton's group (Ctrl-C while baton has the terminal,
  // hang-up) are passed on too.
  static bool should_forward(const signalfd_siginfo& info) noexcept;

 private:
  int m_fd = -1;
  sigset_t m_previous_mask{};
};

}  // namespace baton::cli
