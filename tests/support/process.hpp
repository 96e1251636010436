// A child process for tests: started with fork/exec, its output sent to
// files, a pipe or /dev/null, waited for with a bound, killed, and its
// status decoded. Children get PR_SET_PDEATHSIG(SIGKILL), so a crashed test
// leaves no daemon behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace baton::test {

// A wait(2) status.
class ExitStatus {
 public:
  explicit ExitStatus(int raw) noexcept : m_raw(raw) {}
  int raw() const noexcept { return m_raw; }
  bool exited() const noexcept;
  int code() const noexcept;  // exit code; -1 unless exited()
  bool signaled() const noexcept;
  int signal() const noexcept;  // terminating signal; 0 unless signaled()
  // The shell's view: the code, or 128+N for signal N.
  int shell_code() const noexcept;
  std::string describe() const;  // "exit 0", "killed by signal 9 (Killed)"

 private:
  int m_raw;
};

// Where one of the child's output streams goes.
struct Output {
  enum class Kind { inherit, null, file, pipe };
  Kind kind = Kind::null;
  std::string path;     // Kind::file
  bool append = false;  // Kind::file: append rather than truncate
  static Output inherit() { return {Kind::inherit, {}, false}; }
  static Output null() { return {Kind::null, {}, false}; }
  static Output file(std::string path) {
    return {Kind::file, std::move(path), false};
  }
  static Output append_to(std::string path) {
    return {Kind::file, std::move(path), true};
  }
  static Output pipe() { return {Kind::pipe, {}, false}; }
};

struct ProcessOptions {
  std::vector<std::string>
      argv;  // argv[0] is looked up in PATH if it has no '/'
  // The whole environment; nullopt: this process's own.
  std::optional<std::vector<std::string>> env;
  Output out = Output::null();
  Output err = Output::null();
  std::string cwd;  // empty: this process's
};

// This process's environment without the variables named with one of
// PREFIXES (e.g. "BATON_"), plus EXTRA ("NAME=value", replacing same names).
std::vector<std::string> environment_without(
    const std::vector<std::string>& prefixes,
    const std::vector<std::string>& extra = {});

class Process {
 public:
  Process() = default;
  // Kills (SIGKILL) and reaps the child if it still runs.
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts the child. Throws std::system_error when fork or exec fails (an
  // exec failure is reported by the child through a close-on-exec pipe).
  static Process spawn(const ProcessOptions& options);

  pid_t pid() const noexcept { return m_pid; }
  bool started() const noexcept { return m_pid > 0; }

  // Reaps the child if it ended, without blocking. True while it runs.
  bool running();
  // Blocks until the child ends or TIMEOUT passes; the status once it ended.
  std::optional<ExitStatus> wait(std::chrono::milliseconds timeout);
  // The status if the child was already reaped.
  const std::optional<ExitStatus>& status() const noexcept { return m_status; }

  // Sends SIG; false when the child was already reaped (or kill failed).
  bool kill(int sig);
  // SIGKILL and reap; returns the status.
  ExitStatus kill_and_wait();

  // Output::pipe streams: the read end, or -1.
  int stdout_fd() const noexcept { return m_stdout_fd; }
  int stderr_fd() const noexcept { return m_stderr_fd; }
  // Reads the pipe until EOF or TIMEOUT; returns what came.
  std::string read_stdout(std::chrono::milliseconds timeout);
  // Reads what the stdout pipe holds now, up to one line ending in '\n',
  // waiting at most TIMEOUT for it; the line without '\n', or nullopt.
  std::optional<std::string> read_stdout_line(
      std::chrono::milliseconds timeout);

 private:
  void reset() noexcept;

  pid_t m_pid = -1;
  std::optional<ExitStatus> m_status;
  int m_stdout_fd = -1;
  int m_stderr_fd = -1;
  std::string m_stdout_buffer;  // read but not yet returned by read_stdout_line
};

// True when a process with PID exists (and is not a zombie we could reap:
// zombies count as gone).
bool process_alive(pid_t pid);

// The whole content of PATH, or empty when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace baton::test
