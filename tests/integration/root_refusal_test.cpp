// The root self-check against real FUSE mounts whose locks stay on one
// node: a bindfs root (it shows as a bare "fuse" type) is refused, and
// accepted with --allow-local-locks. Skipped without root, /dev/fuse or
// bindfs.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/daemon_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/wait_until.hpp"

namespace baton::test {
namespace {

using namespace std::chrono_literals;

bool have_program(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

bool mounted(const std::string& path) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line))
    if (line.find(" " + path + " ") != std::string::npos) return true;
  return false;
}

class RootRefusal : public ::testing::Test {
 protected:
  void SetUp() override {
    struct stat fuse {};
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (FUSE mounts)";
    if (::stat("/dev/fuse", &fuse) != 0) GTEST_SKIP() << "/dev/fuse is missing";
    if (!have_program("bindfs")) GTEST_SKIP() << "bindfs is not installed";
    ASSERT_EQ(std::system(("bindfs '" + m_source + "' '" + m_mount + "'").c_str()), 0);
    ASSERT_TRUE(mounted(m_mount)) << "bindfs did not mount " << m_mount;
  }

  void TearDown() override {
    if (m_daemon.running()) m_daemon.stop();
    if (!mounted(m_mount)) return;
    std::string unmount = "fusermount -u '" + m_mount + "' || umount -l '" + m_mount + "'";
    EXPECT_EQ(std::system(unmount.c_str()), 0);
  }

  DaemonConfig config(std::vector<std::string> flags) {
    DaemonConfig config;
    config.root = m_mount;
    config.socket = m_dir.file("pod-" + std::to_string(++m_runs) + ".sock");
    config.extra_flags = std::move(flags);
    return config;
  }

  TempDir m_dir{"baton-root-refusal"};
  std::string m_source = m_dir.make_dir("source");
  std::string m_mount = m_dir.make_dir("mnt");
  DaemonProcess m_daemon;
  int m_runs = 0;
};

TEST_F(RootRefusal, BindfsRootIsRefused) {
  m_daemon = DaemonProcess(config({}));
  m_daemon.spawn();
  std::optional<ExitStatus> status = m_daemon.process().wait(10s);
  ASSERT_TRUE(status) << "batond still runs on a bindfs root";
  EXPECT_TRUE(status->exited() && status->code() == 1) << status->describe();
  std::string log = m_daemon.log();
  EXPECT_NE(log.find("refusing root " + m_mount), std::string::npos) << log;
  EXPECT_NE(log.find("fuse mount of " + m_source), std::string::npos) << log;
  EXPECT_NE(log.find("--allow-local-locks"), std::string::npos) << log;
}

TEST_F(RootRefusal, BindfsRootIsAcceptedWithAllowLocalLocks) {
  m_daemon = DaemonProcess(config({"--allow-local-locks"}));
  std::string error = m_daemon.start();
  ASSERT_EQ(error, "");
  EXPECT_NE(m_daemon.log().find("--allow-local-locks given"), std::string::npos)
      << m_daemon.log();
  EXPECT_EQ(m_daemon.stop_expecting_success(), "");
}

}  // namespace
}  // namespace baton::test
