#include "daemon/root_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace baton::daemon {
namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator)) parts.push_back(part);
  return parts;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      bool octal = true;
      for (std::size_t k = 1; k <= 3 && octal; ++k) {
        char c = field[i + k];
        octal = c >= '0' && c <= '7';
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

bool contains_option(const std::string& options, const std::string& wanted) {
  for (const auto& option : split(options, ','))
    if (option == wanted || option.rfind(wanted + "=", 0) == 0) return true;
  return false;
}

bool is_under(const std::string& path, const std::string& mount_point) {
  if (mount_point == "/") return true;
  return path.compare(0, mount_point.size(), mount_point) == 0 &&
         (path.size() == mount_point.size() || path[mount_point.size()] == '/');
}

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

MountInfo find_mount(const std::string& mountinfo, const std::string& path) {
  MountInfo best;
  std::stringstream lines(mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    // id parent major:minor root mount_point options [optional...] - type source super
    auto fields = split(line, ' ');
    if (fields.size() < 10) continue;
    std::size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (dash + 3 > fields.size()) continue;
    std::string mount_point = unescape(fields[4]);
    if (!is_under(path, mount_point)) continue;
    // Later lines stack on earlier ones, so the longest match that comes
    // last is the mount that is visible at PATH.
    if (mount_point.size() < best.mount_point.size()) continue;
    best.mount_point = mount_point;
    best.fs_type = fields[dash + 1];
    best.options = fields[5] + "," + fields[dash + 3];
    best.source = unescape(fields[dash + 2]);
  }
  return best;
}

RootReport judge_mount(const MountInfo& mount) {
  RootReport report;
  report.mount = mount;
  const std::string& type = mount.fs_type;
  static const char* local_types[] = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs",
                                      "f2fs", "zfs", "overlay", "bcachefs", "ramfs"};
  for (const char* local : local_types) report.local_filesystem |= type == local;
  if (report.local_filesystem) {
    report.warning = "root is on a local " + type +
                     " filesystem: locks exclude only pods on this node";
    return report;
  }
  if (type == "nfs" || type == "nfs4") {
    if (contains_option(mount.options, "nolock"))
      report.refusal = "NFS mount with 'nolock': locks stay on this node";
    for (const auto& option : split(mount.options, ','))
      if (option.rfind("local_lock=", 0) == 0 && option != "local_lock=none")
        report.refusal = "NFS mount with '" + option + "': locks stay on this node";
    return report;
  }
  static const char* node_local_fuse[] = {"fuse.s3fs",    "fuse.gcsfuse", "fuse.goofys",
                                          "fuse.rclone",  "fuse.sshfs",   "fuse.bindfs",
                                          "fuse.unionfs", "fuse.mountpoint-s3", "fuse.blobfuse",
                                          "fuse.blobfuse2"};
  for (const char* fuse : node_local_fuse)
    if (type == fuse || type == std::string(fuse) + "-fuse") {
      report.refusal = type + " mount: its locks never leave this node, so pods on "
                              "other nodes would not be excluded";
      return report;
    }
  // Any other FUSE filesystem: its locks are whatever the FUSE server makes
  // of them, and most (bindfs, unionfs-fuse, ...) leave them to this node's
  // kernel. Only the ones tried across nodes are trusted.
  static const char* cross_node_fuse[] = {"fuse.glusterfs", "fuse.ceph-fuse", "fuse.ceph"};
  const bool fuse = type == "fuse" || type == "fuseblk" || type.rfind("fuse.", 0) == 0;
  if (fuse) {
    for (const char* known : cross_node_fuse)
      if (type == known) return report;
    report.refusal = type + " mount of " + mount.source +
                     ": a FUSE filesystem not known to carry locks across nodes (known: "
                     "fuse.glusterfs, fuse.ceph-fuse), so pods on other nodes may not be "
                     "excluded";
  }
  return report;
}

std::string prepare_root(const std::string& root) {
  struct stat info{};
  if (::stat(root.c_str(), &info) != 0) return errno_text("cannot use root", root);
  if (!S_ISDIR(info.st_mode)) return "root " + root + " is not a directory";
  for (const std::string& dir :
       {root + "/.baton", root + "/.baton/locks", root + "/.baton/versions"}) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return errno_text("cannot create", dir);
  }
  // Two open file descriptions of one file must conflict; if they do not,
  // the filesystem fakes locks and baton would exclude nobody.
  // A probe file of our own, so daemons starting together do not collide.
  std::string probe = root + "/.baton/locks/.selfcheck-" + std::to_string(::getpid()) +
                      "-" + std::to_string(info.st_ino ^ static_cast<unsigned long>(
                                                             ::time(nullptr)));
  int first = ::open(probe.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (first < 0) return errno_text("cannot create", probe);
  int second = ::open(probe.c_str(), O_RDWR | O_CLOEXEC);
  if (second < 0) {
    ::close(first);
    return errno_text("cannot open", probe);
  }
  struct flock lock{};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 1;
  std::string error;
  if (::fcntl(first, F_OFD_SETLK, &lock) != 0) {
    error = errno == EINVAL ? "the filesystem does not support OFD locks (F_OFD_SETLK)"
                            : errno_text("cannot lock", probe);
  } else if (::fcntl(second, F_OFD_SETLK, &lock) == 0) {
    error = "OFD locks on " + probe + " do not conflict between two opens";
  } else if (errno != EAGAIN && errno != EACCES) {
    error = errno_text("cannot test lock on", probe);
  }
  ::close(second);
  ::close(first);
  ::unlink(probe.c_str());
  return error;
}

}  // namespace baton::daemon
