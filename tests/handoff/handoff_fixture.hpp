// The fixture of the handoff tests: a temporary shared root, real batond
// pods on it (stopped with SIGTERM at the end, which must exit 0), libbaton
// clients, and handoff_worker processes (tests/handoff/handoff_worker.cpp).
#pragma once

#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "baton/client.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace baton::test {

const std::string& worker_path();        // handoff_worker
const std::string& seccomp_exec_path();  // seccomp_exec

// Every file under DIR (recursively) whose name starts with ".baton-stage."
// or ".baton-new.": staging files, live or left over. Paths relative to DIR.
std::vector<std::string> staging_files(const std::string& dir);

// Names in DIR (not recursive), sorted; empty when DIR cannot be read.
std::vector<std::string> list_dir(const std::string& dir);

// The whole content of PATH; nullopt when it cannot be opened.
std::optional<std::string> read_file(const std::string& path);

// Writes DATA to PATH (created or truncated) without baton.
void write_file(const std::string& path, const std::string& data);

// "a, b, c" for messages.
std::string join(const std::vector<std::string>& items);

// How many times longer the loops of the longer tests run (torn reads,
// crash rounds, queue items): $BATON_HANDOFF_SOAK, 1 to 1000, default 1
// (the suite's few seconds in CTest). Their bounded waits scale with it.
int soak_factor();

class HandoffTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::string& root() const { return m_root; }
  TempDir& dir() { return m_dir; }

  // A pod on the shared root (or ROOT_OVERRIDE: the same volume seen
  // through another path); throws if it does not answer a ping.
  DaemonProcess& start_daemon(const std::string& pod,
                              std::vector<std::string> flags = {},
                              const std::string& root_override = {});

  // A pod whose batond runs under seccomp_exec FILTER_FLAGS (e.g.
  // {"--no-inotify"}: it sees changes only by polling). Returns its socket.
  std::string start_filtered_daemon(const std::string& pod,
                                    std::vector<std::string> filter_flags,
                                    std::vector<std::string> flags = {});
  std::string filtered_daemon_log(const std::string& pod) const;
  // The filtered pod's process (to see it die, for instance).
  Process& filtered_daemon(const std::string& pod);

  // A client of SOCKET; throws if it cannot connect.
  Client connect(const std::string& socket);

  // Starts handoff_worker ARGS..., stdout to a pipe, stderr to a file
  // (see worker_stderr).
  Process& start_worker(std::vector<std::string> args);
  std::string worker_stderr(const Process& worker) const;

  // Publishes DATA to PATH through CLIENT and returns the version.
  std::uint64_t publish(Client& client, const std::string& path,
                        const std::string& data,
                        const PublishOptions& options = {});

  // Waits (bounded) until no staging file is left under the root; on
  // timeout returns those that remain.
  std::vector<std::string> wait_for_no_staging(
      std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  TempDir m_dir{"bho"};
  std::string m_root;
  std::deque<DaemonProcess> m_daemons;
  struct FilteredDaemon {
    std::string pod;
    std::string log;
    Process process;
  };
  std::deque<FilteredDaemon> m_filtered;
  std::deque<Process> m_workers;
  std::vector<std::string> m_worker_logs;
  int m_next_worker = 0;
};

// One fixture type for the whole suite (gtest requires it per suite name).
using Handoff = HandoffTest;

}  // namespace baton::test
