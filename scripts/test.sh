#!/usr/bin/env bash
# test.sh: build baton and run its whole test suite (unit, integration, e2e).
#
#   scripts/test.sh [--sanitize address|thread] [--build-dir DIR] [--no-deps]
#                   [-- CTEST_ARGS...]
#
#   --sanitize address   ASan+UBSan build in build-asan/
#   --sanitize thread    TSan build in build-tsan/
#   --build-dir DIR      build here instead (default build/, or the above)
#   --no-deps            do not check/install the apt dependencies
#   -- CTEST_ARGS        passed to ctest, e.g. `-- -R e2e` or `-- -L unit`
#
# Installs the dependencies (GlusterFS and Ceph included, for the cross-node
# tests), configures (RelWithDebInfo), builds with -j2 and runs ctest with -j2
# and a per-test timeout ($BATON_TEST_TIMEOUT seconds, default 300). Exits non-zero
# when anything fails. The e2e tests need root and /dev/fuse; without them
# they are reported as skipped, not failed.
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

sanitize=""
build_dir=""
deps=1
ctest_args=()
while (($#)); do
    case "$1" in
    --sanitize)
        [[ $# -ge 2 ]] || usage
        sanitize=$2
        shift 2
        ;;
    --sanitize=*) sanitize=${1#*=}; shift ;;
    --build-dir)
        [[ $# -ge 2 ]] || usage
        build_dir=$2
        shift 2
        ;;
    --build-dir=*) build_dir=${1#*=}; shift ;;
    --no-deps) deps=0; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h | --help) usage ;;
    *) printf 'test.sh: unknown argument %s\n' "$1" >&2; usage ;;
    esac
done

case "$sanitize" in
"") : "${build_dir:=build}" ;;
address) : "${build_dir:=build-asan}" ;;
thread) : "${build_dir:=build-tsan}" ;;
*) printf 'test.sh: --sanitize takes address or thread, not %s\n' "$sanitize" >&2; exit 64 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"
jobs=${BATON_JOBS:-2}
label="tests${sanitize:+ ($sanitize sanitizer)}"

step_start=0
step() {
    step_start=$SECONDS
    printf '\n==> %s\n' "$*"
}
step_done() { printf '==> done in %ds\n' $((SECONDS - step_start)); }

if ((deps)); then
    step "dependencies"
    scripts/install-deps.sh --with-gluster --with-ceph --with-node
    step_done
fi

cmake_args=(-S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DBATON_SANITIZE=$sanitize")
if [[ -n "$sanitize" ]]; then
    # The benchmarks say nothing under a sanitizer; skip building them.
    # -O1 -g1 instead of -O2 -g: half the compile time on 2 cores, stack traces
    # keep file:line, and without -DNDEBUG the assertions are checked too.
    cmake_args+=(-DBATON_BUILD_BENCH=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1")
    # GCC 12 false positives on Boost.Asio's own code, fatal under -Werror:
    # - -Wmismatched-new-delete: the sanitizers' instrumentation makes GCC see
    #   an awaitable frame's aligned_alloc() paired with its class operator
    #   delete (which does free() it); GCC bug 109224.
    # - -Wtsan: TSan does not model the std::atomic_thread_fence Asio uses.
    sanitizer_cxx_flags="-Wno-mismatched-new-delete"
    if [[ "$sanitize" == thread ]]; then sanitizer_cxx_flags+=" -Wno-tsan"; fi
    cmake_args+=("-DCMAKE_CXX_FLAGS=$sanitizer_cxx_flags")
fi

step "configure $build_dir${sanitize:+ (BATON_SANITIZE=$sanitize)}"
cmake "${cmake_args[@]}"
step_done

step "build $build_dir (-j$jobs)"
cmake --build "$build_dir" -j"$jobs"
step_done

# Sanitizer run-time settings: fail loudly on the first finding.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# report_thread_leaks=0: batond never joins a pool thread or lock waiter
# that may be stuck in the kernel on a hung mount; it exits past them.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:report_thread_leaks=0}"

runner=()
if [[ "$sanitize" == thread ]]; then
    # GCC 12's TSan cannot map its shadow memory when the kernel randomises
    # mmap with more than 28 bits (newer kernels default to 32): it dies with
    # "FATAL: ThreadSanitizer: unexpected memory mapping". Probe a tiny
    # program; if it fails, lower vm.mmap_rnd_bits, or else run the tests
    # with address-space randomisation off (setarch -R, inherited by children).
    step "TSan probe"
    probe_dir=$(mktemp -d)
    trap 'rm -rf "$probe_dir"' EXIT
    printf '#include <thread>\nint main(){std::thread t([]{});t.join();}\n' >"$probe_dir/p.cpp"
    c++ -fsanitize=thread -pthread "$probe_dir/p.cpp" -o "$probe_dir/p"
    if "$probe_dir/p" >/dev/null 2>&1; then
        echo "TSan works as is (vm.mmap_rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo '?'))"
    elif sysctl -qw vm.mmap_rnd_bits=28 2>/dev/null && "$probe_dir/p" >/dev/null 2>&1; then
        echo "TSan needed vm.mmap_rnd_bits=28 (set now)"
    elif setarch "$(uname -m)" -R "$probe_dir/p" >/dev/null 2>&1; then
        echo "TSan needs ASLR off: running the tests under setarch -R"
        runner=(setarch "$(uname -m)" -R)
    else
        echo "test.sh: a TSan program cannot run on this machine, even with ASLR off:" >&2
        "$probe_dir/p" || true
        exit 1
    fi
    step_done
fi

step "$label: ctest -j$jobs in $build_dir"
rc=0
"${runner[@]}" ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j"$jobs" \
    --timeout "${BATON_TEST_TIMEOUT:-300}" "${ctest_args[@]}" || rc=$?
step_done
if ((rc != 0)); then
    printf '\ntest.sh: %s FAILED (ctest exit %d)\n' "$label" "$rc" >&2
    exit "$rc"
fi
printf '\ntest.sh: %s passed\n' "$label"
