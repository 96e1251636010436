// A real batond for integration tests: started on a root with its own
// socket, pod and node names and extra flags, ready once it answers a ping,
// stopped with SIGTERM (SIGKILL after a bound) or killed with SIGKILL. Its
// log goes to a file the tests can read and print on failure.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace baton::test {

// The binaries under test, from the build (compile definitions set by CMake).
const std::string& batond_path();
const std::string& baton_cli_path();

// This process's environment without BATON_*, POD_NAME and NODE_NAME, so a
// developer's shell cannot change what a test starts; plus EXTRA.
std::vector<std::string> clean_environment(
    const std::vector<std::string>& extra = {});

struct DaemonConfig {
  std::string root;    // the shared volume (a directory)
  std::string socket;  // its Unix socket
  std::string pod = "pod";
  std::string node = "node";
  std::vector<std::string>
      extra_flags;       // e.g. {"--lock-check-interval", "0.1"}
  std::string log_path;  // empty: SOCKET + ".log"
  std::string log_level = "debug";
};

class DaemonProcess {
 public:
  DaemonProcess() = default;
  explicit DaemonProcess(DaemonConfig config) : m_config(std::move(config)) {}
  // Kills the daemon if it still runs.
  ~DaemonProcess() = default;
  DaemonProcess(DaemonProcess&&) noexcept = default;
  DaemonProcess& operator=(DaemonProcess&&) noexcept = default;

  // Starts batond and waits (up to READY_TIMEOUT) until it answers a ping.
  // Returns an empty string when ready, else why not (with its log).
  std::string start(
      std::chrono::milliseconds ready_timeout = std::chrono::seconds(10));
  // Starts batond without waiting for it: for daemons expected to fail.
  void spawn();

  // SIGTERM; SIGKILL if it has not exited after BOUND. The exit status, or
  // nullopt if it had to be killed.
  std::optional<ExitStatus> stop(
      std::chrono::milliseconds bound = std::chrono::seconds(5));
  // stop(), expecting exit 0: empty when so, else what happened, with the log.
  std::string stop_expecting_success(
      std::chrono::milliseconds bound = std::chrono::seconds(5));
  // SIGKILL and reap: a crash as far as the rest of the world can tell.
  void kill9();

  bool running() { return m_process.running(); }
  Process& process() noexcept { return m_process; }
  pid_t pid() const noexcept { return m_process.pid(); }
  const DaemonConfig& config() const noexcept { return m_config; }
  const std::string& socket() const noexcept { return m_config.socket; }
  const std::string& pod() const noexcept { return m_config.pod; }
  std::string log_path() const;
  std::string log() const;  // the daemon's log so far

  // True once the daemon answers a ping within TIMEOUT.
  bool ping(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(200)) const;

 private:
  DaemonConfig m_config;
  Process m_process;
};

}  // namespace baton::test
