// Runs a program without inotify: inotify_init and inotify_init1 fail with
// ENOSYS (a seccomp filter), as on a kernel or sandbox without it. batond
// then cannot see publishes made through this kernel and must rely on its
// polling, the path it takes for changes made by other nodes.
//
//   no_inotify_exec PROGRAM [ARGS...]
//
// Exit status: PROGRAM's, or 2 when the filter cannot be installed or
// PROGRAM cannot be run.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace {

#if defined(__x86_64__)
constexpr unsigned k_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned k_arch = AUDIT_ARCH_AARCH64;
#else
#error "no_inotify_exec: add this architecture's AUDIT_ARCH"
#endif

#ifdef __NR_inotify_init
constexpr unsigned k_inotify_init = __NR_inotify_init;
#else
constexpr unsigned k_inotify_init = __NR_inotify_init1;  // arm64 has only init1
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: no_inotify_exec PROGRAM [ARGS...]\n");
    return 2;
  }
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k_arch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_inotify_init1, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k_inotify_init, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
  sock_fprog program{
      static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::fprintf(stderr, "no_inotify_exec: cannot install the filter: %s\n",
                 std::strerror(errno));
    return 2;
  }
  ::execv(argv[1], argv + 1);
  std::fprintf(stderr, "no_inotify_exec: cannot run %s: %s\n", argv[1],
               std::strerror(errno));
  return 2;
}
