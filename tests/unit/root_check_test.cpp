#include "daemon/root_check.hpp"

#include <gtest/gtest.h>

namespace baton::daemon {
namespace {

const char* k_mountinfo =
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "30 22 0:40 / /data rw,relatime shared:2 - nfs4 srv:/export rw,vers=4.2,local_lock=none\n"
    "31 22 0:41 / /legacy rw - nfs srv:/old rw,vers=3,nolock\n"
    "32 22 0:42 / /flat rw - nfs4 srv:/x rw,local_lock=all\n"
    "33 22 0:43 / /bucket rw - fuse.s3fs s3fs rw,user_id=0\n"
    "34 22 0:44 / /gluster rw - fuse.glusterfs host:/vol rw\n"
    "35 22 0:45 / /with\\040space rw - tmpfs tmpfs rw\n"
    "36 30 0:46 / /data/inner rw - ext4 /dev/vdb rw\n"
    "37 22 0:47 / /bound rw - fuse /srv/data rw,user_id=0,allow_other\n"
    "38 22 0:48 / /union rw - fuse.unionfs-fuse unionfs-fuse rw,user_id=0\n"
    "39 22 0:49 / /cephfuse rw - fuse.ceph-fuse ceph-fuse rw,user_id=0\n"
    "40 22 0:50 / /ceph rw - ceph 10.0.0.1:6789:/ rw,name=node1\n"
    "41 22 0:51 / /juice rw - fuse.juicefs JuiceFS:vol rw,user_id=0\n"
    "42 22 0:52 / /ssh rw - fuse.sshfs u@h:/x rw,user_id=0\n";

TEST(RootCheck, FindsTheMountThatHoldsAPath) {
  EXPECT_EQ(find_mount(k_mountinfo, "/data/jobs").fs_type, "nfs4");
  EXPECT_EQ(find_mount(k_mountinfo, "/data").fs_type, "nfs4");
  EXPECT_EQ(find_mount(k_mountinfo, "/database").fs_type, "ext4");  // not under /data
  EXPECT_EQ(find_mount(k_mountinfo, "/data/inner/x").fs_type, "ext4");
  EXPECT_EQ(find_mount(k_mountinfo, "/with space/x").fs_type, "tmpfs");
}

TEST(RootCheck, AcceptsMountsWhoseLocksReachOtherNodes) {
  EXPECT_EQ(judge_mount(find_mount(k_mountinfo, "/data")).refusal, "");
  EXPECT_EQ(judge_mount(find_mount(k_mountinfo, "/gluster")).refusal, "");
  EXPECT_FALSE(judge_mount(find_mount(k_mountinfo, "/gluster")).local_filesystem);
  // CephFS, kernel client or ceph-fuse: the MDS arbitrates locks.
  EXPECT_EQ(judge_mount(find_mount(k_mountinfo, "/cephfuse")).refusal, "");
  EXPECT_EQ(judge_mount(find_mount(k_mountinfo, "/ceph")).refusal, "");
  EXPECT_FALSE(judge_mount(find_mount(k_mountinfo, "/ceph")).local_filesystem);
}

// bindfs shows as plain "fuse"; unionfs-fuse and anything unknown are
// refused too, naming the type and the source.
TEST(RootCheck, RefusesFuseFilesystemsNotKnownToCarryLocksAcrossNodes) {
  RootReport bound = judge_mount(find_mount(k_mountinfo, "/bound/x"));
  EXPECT_NE(bound.refusal.find("fuse mount of /srv/data"), std::string::npos) << bound.refusal;
  EXPECT_NE(judge_mount(find_mount(k_mountinfo, "/union")).refusal.find("unionfs-fuse"),
            std::string::npos);
  EXPECT_NE(judge_mount(find_mount(k_mountinfo, "/juice")).refusal.find("fuse.juicefs"),
            std::string::npos);
  EXPECT_NE(judge_mount(find_mount(k_mountinfo, "/ssh")).refusal.find("never leave"),
            std::string::npos);
}

TEST(RootCheck, RefusesMountsWhoseLocksStayOnOneNode) {
  EXPECT_NE(judge_mount(find_mount(k_mountinfo, "/legacy")).refusal.find("nolock"),
            std::string::npos);
  EXPECT_NE(judge_mount(find_mount(k_mountinfo, "/flat")).refusal.find("local_lock=all"),
            std::string::npos);
  EXPECT_NE(judge_mount(find_mount(k_mountinfo, "/bucket")).refusal.find("s3fs"),
            std::string::npos);
}

TEST(RootCheck, WarnsThatALocalFilesystemCoversOneNode) {
  RootReport report = judge_mount(find_mount(k_mountinfo, "/srv"));
  EXPECT_TRUE(report.local_filesystem);
  EXPECT_EQ(report.refusal, "");
  EXPECT_NE(report.warning.find("this node"), std::string::npos);
}

TEST(RootCheck, SelfCheckPassesOnARealDirectoryAndFailsOnAMissingOne) {
  char dir[] = "/tmp/baton-rootcheck-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  EXPECT_EQ(prepare_root(dir), "");
  EXPECT_NE(prepare_root(std::string(dir) + "/missing"), "");
  std::string cleanup = std::string("rm -rf ") + dir;
  EXPECT_EQ(std::system(cleanup.c_str()), 0);
}

}  // namespace
}  // namespace baton::daemon
