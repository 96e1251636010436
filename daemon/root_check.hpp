// The start-up self-check of the root: can its locks exclude across pods?
#pragma once

#include <string>

namespace baton::daemon {

struct MountInfo {
  std::string mount_point;
  std::string fs_type;     // e.g. "nfs4", "fuse.glusterfs", "ext4"
  std::string options;     // mount and super options, comma separated
  std::string source;      // e.g. "host:/vol", "/dev/vda", "/srv/data" (bindfs)
};

struct RootReport {
  MountInfo mount;
  bool local_filesystem = false;  // locks reach only this node's kernel
  std::string refusal;            // why locks would not exclude across pods
  std::string warning;            // works, but with a caveat worth logging
};

// The mount that holds PATH, from a /proc/self/mountinfo text.
MountInfo find_mount(const std::string& mountinfo, const std::string& path);

// Judges a mount: refuses NFS without real locking (nolock, local_lock=),
// FUSE filesystems whose locks never leave the node (s3fs, gcsfuse, sshfs),
// and every other FUSE filesystem but the ones known to carry OFD locks
// across nodes (fuse.glusterfs, fuse.ceph-fuse). Kernel CephFS ("ceph") and
// NFS with locking are accepted.
RootReport judge_mount(const MountInfo& mount);

// Prepares <root>/.baton/locks and checks, on that directory, that two open
// file descriptions really conflict. Returns "" on success, else one line.
std::string prepare_root(const std::string& root);

}  // namespace baton::daemon
