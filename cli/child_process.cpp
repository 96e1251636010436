#include "cli/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "cli/exit_codes.hpp"

namespace baton::cli {
namespace {

void close_fd(int fd) noexcept {
  // Linux closes the descriptor even when close() reports EINTR: never retry.
  if (fd >= 0) ::close(fd);
}

// Runs in the vfork()ed child, on the parent's memory and stack until exec:
// only syscalls, no allocation, no return.
[[noreturn, gnu::noinline]] void run_child(char* const argv[],
                                           void (*prepare)() noexcept,
                                           pid_t parent, int stdin_fd,
                                           bool new_group, int terminal_fd,
                                           int error_fd) noexcept {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died between vfork() and prctl(): then no signal
  // will come, and CMD must not run unguarded.
  if (::getppid() != parent) ::_exit(k_exit_internal);
  // Here, before exec, so that no signal meant for the group can miss CMD.
  // Every signal is still blocked: tcsetpgrp() gets no SIGTTOU.
  if (new_group) {
    ::setpgid(0, 0);
    if (terminal_fd >= 0) ::tcsetpgrp(terminal_fd, ::getpid());
  }
  if (prepare) prepare();
  // dup2 leaves the copy without close-on-exec.
  if (stdin_fd >= 0 && stdin_fd != STDIN_FILENO &&
      ::dup2(stdin_fd, STDIN_FILENO) < 0) {
    int error = errno;
    ssize_t ignored = ::write(error_fd, &error, sizeof error);
    static_cast<void>(ignored);
    ::_exit(k_exit_internal);
  }
  ::execvp(argv[0], argv);
  int error = errno;
  ssize_t ignored = ::write(error_fd, &error, sizeof error);
  static_cast<void>(ignored);
  ::_exit(error == ENOENT ? k_exit_not_found : k_exit_cannot_execute);
}

}  // namespace

SpawnResult spawn_child(char* const argv[], void (*prepare)() noexcept,
                        int stdin_fd, bool new_group, int terminal_fd) {
  SpawnResult result;
  // An exec error comes back through a close-on-exec pipe: EOF means exec
  // happened. (Memory shared with the vfork child would do, but sanitizers
  // turn vfork into fork.)
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    result.error = {errno, std::system_category()};
    return result;
  }
  // vfork, not fork: copying the page tables is most of the cost of
  // starting CMD on a VM (0.1-0.4 ms), and `baton run` wraps short commands;
  // we are suspended until the child has exec()ed or exited anyway. No
  // signal handler may run in the child while it shares our memory: block
  // everything until PREPARE has put back handler-free dispositions (as
  // glibc's posix_spawn does).
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &previous);
  const pid_t parent = ::getpid();
  const pid_t pid = ::vfork();
  if (pid == 0)
    run_child(argv, prepare, parent, stdin_fd, new_group, terminal_fd,
              pipe_fds[1]);
  const int vfork_errno = errno;
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  close_fd(pipe_fds[1]);
  if (pid < 0) {
    close_fd(pipe_fds[0]);
    result.error = {vfork_errno, std::system_category()};
    return result;
  }

  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(pipe_fds[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  close_fd(pipe_fds[0]);
  if (n != static_cast<ssize_t>(sizeof exec_errno)) {
    result.pid = pid;  // EOF: exec closed the pipe, CMD runs
    return result;
  }
  int status = 0;
  std::error_code ignored;
  wait_child(pid, true, status, ignored);
  result.exec_errno = exec_errno;
  return result;
}

bool wait_child(pid_t pid, bool block, int& status, std::error_code& ec) {
  for (;;) {
    pid_t done = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    if (done == pid) return true;
    if (done == 0) return false;
    if (errno == EINTR) continue;
    ec = {errno, std::system_category()};
    return false;
  }
}

int exit_code_from_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return k_exit_signal_base + WTERMSIG(status);
  return k_exit_internal;
}

}  // namespace baton::cli
