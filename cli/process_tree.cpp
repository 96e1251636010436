#include "cli/process_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace baton::cli {
namespace {

// The parent of PID from /proc/PID/stat, or -1 if it is gone. The command
// name (field 2) may hold spaces and parentheses: the state and the parent
// follow the last ')'.
pid_t parent_of(int proc_fd, const char* pid) {
  char path[sizeof(dirent::d_name) + 8];
  std::snprintf(path, sizeof path, "%s/stat", pid);
  int fd = ::openat(proc_fd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buffer[512];
  ssize_t n;
  do {
    n = ::read(fd, buffer, sizeof buffer - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return -1;
  buffer[n] = '\0';
  const char* close_paren = std::strrchr(buffer, ')');
  if (!close_paren || close_paren[1] != ' ' || close_paren[2] == '\0')
    return -1;
  return static_cast<pid_t>(std::strtol(close_paren + 4, nullptr, 10));
}

}  // namespace

std::vector<pid_t> descendants_of(pid_t root) {
  // Linux lists children in /proc/PID/task/TID/children only with
  // CONFIG_PROC_CHILDREN, which many kernels lack: read every parent.
  std::vector<std::pair<pid_t, pid_t>> links;  // (pid, parent)
  DIR* proc = ::opendir("/proc");
  if (!proc) return {};
  const int proc_fd = ::dirfd(proc);
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    pid_t parent = parent_of(proc_fd, entry->d_name);
    if (parent > 0)
      links.emplace_back(static_cast<pid_t>(std::atoi(entry->d_name)), parent);
  }
  ::closedir(proc);

  std::vector<pid_t> found;
  found.push_back(root);
  for (std::size_t next = 0; next < found.size(); ++next) {
    for (const auto& [pid, parent] : links)
      if (parent == found[next]) found.push_back(pid);
  }
  found.erase(found.begin());
  return found;
}

void signal_tree(pid_t root, pid_t pgid, int signal) {
  if (pgid > 0) ::kill(-pgid, signal);
  const std::vector<pid_t> tree = descendants_of(root);
  for (pid_t pid : tree) ::kill(pid, signal);
  if (signal == SIGTERM) {
    if (pgid > 0) ::kill(-pgid, SIGCONT);
    for (pid_t pid : tree) ::kill(pid, SIGCONT);
  }
}

}  // namespace baton::cli
