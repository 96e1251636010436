// Runs a program (batond) under a seccomp filter that takes something away
// from it, to reach code paths a healthy machine never shows:
//
//   seccomp_exec [--no-inotify] [--die-on-version-record |
//   --die-on-version-intent]
//                PROGRAM [ARGS...]
//
// --no-inotify: inotify_init and inotify_init1 fail with ENOSYS, as on a
//   kernel or sandbox without inotify. batond then cannot see publishes made
//   through this kernel and relies on polling, the path it takes for changes
//   made on other nodes.
// --die-on-version-record: the process is killed (SIGSYS, as a crash) when
//   it writes a final version record, i.e. a pwrite64 at offset 0 of more
//   than 128 bytes (daemon/publish.cpp writes the 128-byte header alone for
//   its intent before the rename, and header plus path after it; lock
//   files' token records are 64 bytes). A publish then dies after its
//   rename and before its final version record.
// --die-on-version-intent: killed at the intent instead (a pwrite64 at
//   offset 0 of exactly 128 bytes): a publish dies before its rename.
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
#include <string>
#include <vector>

namespace {

#if defined(__x86_64__)
constexpr unsigned k_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned k_arch = AUDIT_ARCH_AARCH64;
#else
#error "seccomp_exec: add this architecture's AUDIT_ARCH"
#endif

#ifdef __NR_inotify_init
constexpr unsigned k_inotify_init = __NR_inotify_init;
#else
constexpr unsigned k_inotify_init = __NR_inotify_init1;  // arm64: init1 only
#endif

// Little-endian halves of a syscall argument in seccomp_data.
constexpr unsigned arg_low(int i) {
  return static_cast<unsigned>(offsetof(seccomp_data, args) + 8 * i);
}
constexpr unsigned arg_high(int i) { return arg_low(i) + 4; }

sock_filter statement(unsigned short code, unsigned k) {
  return BPF_STMT(code, k);
}
sock_filter jump(unsigned short code, unsigned k, unsigned char jt,
                 unsigned char jf) {
  return BPF_JUMP(code, k, jt, jf);
}

}  // namespace

int main(int argc, char** argv) {
  bool no_inotify = false, die_on_record = false, die_on_intent = false;
  int first = 1;
  for (; first < argc && argv[first][0] == '-'; ++first) {
    std::string flag = argv[first];
    if (flag == "--no-inotify")
      no_inotify = true;
    else if (flag == "--die-on-version-record")
      die_on_record = true;
    else if (flag == "--die-on-version-intent")
      die_on_intent = true;
    else
      break;
  }
  if (first >= argc) {
    std::fprintf(stderr,
                 "usage: seccomp_exec [--no-inotify] [--die-on-version-record "
                 "| --die-on-version-intent] PROGRAM [ARGS...]\n");
    return 2;
  }
  constexpr unsigned short k_load = BPF_LD | BPF_W | BPF_ABS;
  constexpr unsigned short k_equal = BPF_JMP | BPF_JEQ | BPF_K;
  constexpr unsigned short k_greater = BPF_JMP | BPF_JGT | BPF_K;
  constexpr unsigned short k_return = BPF_RET | BPF_K;
  std::vector<sock_filter> filter = {
      statement(k_load, offsetof(seccomp_data, arch)),
      jump(k_equal, k_arch, 1, 0),
      statement(k_return, SECCOMP_RET_ALLOW),
  };
  if (no_inotify) {
    filter.insert(filter.end(),
                  {
                      statement(k_load, offsetof(seccomp_data, nr)),
                      jump(k_equal, __NR_inotify_init1, 1, 0),
                      jump(k_equal, k_inotify_init, 0, 1),
                      statement(k_return, SECCOMP_RET_ERRNO |
                                              (ENOSYS & SECCOMP_RET_DATA)),
                  });
  }
  if (die_on_record || die_on_intent) {
    // pwrite64(fd, buf, count, offset): offset == 0 and count > 128 (the
    // record) or count == 128 (the intent).
    const unsigned char high_count = die_on_record ? 2 : 3;  // kill, or out
    filter.insert(
        filter.end(),
        {
            // Jump offsets count from the next instruction; "out" is the
            // instruction after this block, "kill" its last one.
            statement(k_load, offsetof(seccomp_data, nr)),  // 0
            jump(k_equal, __NR_pwrite64, 0, 9),             // 1: else out
            statement(k_load, arg_low(3)),                  // 2
            jump(k_equal, 0, 0, 7),                         // 3: else out
            statement(k_load, arg_high(3)),                 // 4
            jump(k_equal, 0, 0, 5),                         // 5: else out
            statement(k_load, arg_high(2)),                 // 6
            jump(k_equal, 0, 0, high_count),                // 7: >= 2^32
            statement(k_load, arg_low(2)),                  // 8
            die_on_record ? jump(k_greater, 128, 0, 1)      // 9: > 128: kill
                          : jump(k_equal, 128, 0, 1),       // 9: == 128: kill
            statement(k_return, SECCOMP_RET_KILL_PROCESS),  // 10: kill
        });
  }
  filter.push_back(statement(k_return, SECCOMP_RET_ALLOW));
  sock_fprog program{static_cast<unsigned short>(filter.size()), filter.data()};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::fprintf(stderr, "seccomp_exec: cannot install the filter: %s\n",
                 std::strerror(errno));
    return 2;
  }
  ::execv(argv[first], argv + first);
  std::fprintf(stderr, "seccomp_exec: cannot run %s: %s\n", argv[first],
               std::strerror(errno));
  return 2;
}
