#!/usr/bin/env bash
# `baton run --lock x -- true` against `flock FILE true`, with hyperfine, in
# one run, for three placements: same vCPU (everything on cpu 0), split
# (batond on cpu 1, the commands on cpu 0) and unpinned. `true` alone is the
# cost of one process start: both wrappers pay two. `baton --version` and
# `baton ping` split baton's cost into start-up and connect + greeting.
#
# Usage: bench/run_vs_flock.sh [--build DIR] [--runs N] [--warmup N]
#                              [--placements same,split,unpinned] [--profile|--no-profile]
# --profile (default when the ratio misses 1.1x) adds perf stat, LD_DEBUG
# statistics and an strace timeline of one `baton run`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build-bench"
runs=500
warmup=50
placements="same,split,unpinned"
profile=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --placements) placements=$2; shift 2 ;;
    --profile) profile=yes; shift ;;
    --no-profile) profile=no; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_vs_flock.sh: unknown argument '$1'" >&2; exit 64 ;;
  esac
done
baton="$build/cli/baton"
batond="$build/daemon/batond"
for tool in "$baton" "$batond"; do
  [ -x "$tool" ] || { echo "run_vs_flock.sh: $tool not built" >&2; exit 69; }
done
for tool in hyperfine flock taskset python3; do
  command -v "$tool" >/dev/null || { echo "run_vs_flock.sh: needs $tool" >&2; exit 69; }
done
true_bin=$(command -v true)
[ "$true_bin" = true ] && true_bin=/usr/bin/true  # the builtin: we want the binary

scratch=$(mktemp -d "${TMPDIR:-/tmp}/baton-vs-flock.XXXXXX")
daemon_pid=
stop_daemon() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=
  fi
}
cleanup() { stop_daemon; rm -rf "$scratch"; }
trap cleanup EXIT

# start_daemon CPU-LIST ("" for unpinned): a fresh root and socket each time.
start_daemon() {
  local cpus=$1 root="$scratch/root.$RANDOM" socket="$scratch/baton.sock"
  mkdir -p "$root"
  rm -f "$socket"
  if [ -n "$cpus" ]; then
    taskset -c "$cpus" "$batond" --root "$root" --socket "$socket" --log-level warn \
      --allow-local-locks 2>>"$scratch/batond.log" &
  else
    "$batond" --root "$root" --socket "$socket" --log-level warn --allow-local-locks \
      2>>"$scratch/batond.log" &
  fi
  daemon_pid=$!
  for _ in $(seq 1 500); do
    "$baton" --socket "$socket" ping >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.01
  done
  echo "run_vs_flock.sh: batond did not come up; its log:" >&2
  cat "$scratch/batond.log" >&2
  exit 69
}

summarize() {  # summarize JSON PLACEMENT
  python3 - "$1" "$2" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
placement = sys.argv[2]
rows = {}
for r in data["results"]:
    t = sorted(r["times"])
    n = len(t)
    rows[r["command"]] = dict(mean=r["mean"] * 1e3, median=t[n // 2] * 1e3,
                              p99=t[min(n - 1, int(0.99 * (n - 1) + 0.5))] * 1e3,
                              user=r["user"] * 1e3, system=r["system"] * 1e3, n=n)
print(f"\n== {placement} ==")
print(f"{'command':<34} {'median':>9} {'mean':>9} {'p99':>9} {'user':>8} {'sys':>8}  runs")
for name, r in rows.items():
    print(f"{name:<34} {r['median']:7.3f}ms {r['mean']:7.3f}ms {r['p99']:7.3f}ms "
          f"{r['user']:6.3f}ms {r['system']:6.3f}ms  {r['n']}")
t, f, b = rows["true"], rows["flock FILE true"], rows["baton run --lock x -- true"]
v, p = rows["baton --version"], rows["baton ping"]
ratio = b["median"] / f["median"]
print(f"baton/flock: median {ratio:.2f}x, mean {b['mean'] / f['mean']:.2f}x, "
      f"p99 {b['p99'] / f['p99']:.2f}x -> target <= 1.1x: {'met' if ratio <= 1.1 else 'MISSED'}")
print(f"baton - flock: {b['median'] - f['median']:+.3f} ms at the median")
print(f"floor of two process starts (2 x true): {2 * t['median']:.3f} ms; "
      f"flock {f['median'] / (2 * t['median']):.2f}x of it, baton {b['median'] / (2 * t['median']):.2f}x")
print(f"where baton's time goes (medians): start-up (--version - true) "
      f"{v['median'] - t['median']:+.3f} ms; connect + greeting + ping (ping - --version) "
      f"{p['median'] - v['median']:+.3f} ms; lock, child, unlock (run - ping) "
      f"{b['median'] - p['median']:+.3f} ms")
with open(sys.argv[1] + ".ratio", "w") as out:
    out.write(f"{ratio:.3f}\n")
EOF
}

echo "run_vs_flock.sh  $(date -u '+%Y-%m-%d %H:%M UTC')  $(uname -sr), $(nproc) cpus"
echo "baton: $baton"
echo "hyperfine $(hyperfine --version | cut -d' ' -f2), --shell=none, --warmup $warmup, --runs $runs"

missed=no
IFS=, read -r -a wanted <<<"$placements"
for placement in "${wanted[@]}"; do
  case "$placement" in
    same) daemon_cpus=0; client=(taskset -c 0) ;;
    split) daemon_cpus=1; client=(taskset -c 0) ;;
    unpinned) daemon_cpus=; client=() ;;
    *) echo "run_vs_flock.sh: unknown placement '$placement'" >&2; exit 64 ;;
  esac
  start_daemon "$daemon_cpus"
  socket="$scratch/baton.sock"
  lockfile="$scratch/flock.lock"
  : >"$lockfile"
  json="$scratch/$placement.json"
  "${client[@]}" hyperfine --shell=none --style none --warmup "$warmup" --runs "$runs" \
    --export-json "$json" \
    -n "true" "$true_bin" \
    -n "flock FILE true" "flock $lockfile $true_bin" \
    -n "baton run --lock x -- true" "$baton --socket $socket run --lock x -- $true_bin" \
    -n "baton --version" "$baton --version" \
    -n "baton ping" "$baton --socket $socket ping" >/dev/null
  summarize "$json" "$placement: batond on cpu ${daemon_cpus:-any}, commands on cpu $([ ${#client[@]} -gt 0 ] && echo 0 || echo any)"
  ratio=$(cat "$json.ratio")
  python3 -c "import sys; sys.exit(0 if float('$ratio') <= 1.1 else 1)" || missed=yes
  stop_daemon
done

if [ "$profile" = no ] || { [ "$profile" = auto ] && [ "$missed" = no ]; }; then
  exit 0
fi

echo
echo "== profile: where baton's start-up time goes (same vCPU, batond on cpu 0) =="
start_daemon 0
socket="$scratch/baton.sock"
lockfile="$scratch/flock.lock"
run=(taskset -c 0)

if command -v perf >/dev/null; then
  echo "-- perf stat -r 300 (software counters; per run)"
  for cmd in "flock $lockfile $true_bin" "$baton --socket $socket run --lock x -- $true_bin"; do
    # shellcheck disable=SC2086
    "${run[@]}" perf stat -r 300 -e task-clock,context-switches,cpu-migrations,page-faults \
      $cmd 2>&1 >/dev/null | grep -E "task-clock|context-switches|page-faults|elapsed" |
      sed "s|^|  $(basename "${cmd%% *}"): |"
  done
fi

echo "-- dynamic loading (LD_DEBUG=statistics of the wrapper itself, unpinned: taskset"
echo "   would report its own loading), and process start-up without any work"
for cmd in "flock $lockfile $true_bin" "$baton --socket $socket run --lock x -- $true_bin"; do
  # The first statistics block is the wrapper's; the child's (true) follows.
  # shellcheck disable=SC2086
  LD_DEBUG=statistics $cmd 2>&1 | grep -E "total startup time|time needed for relocation" |
    head -2 | sed "s|^ *[0-9]*: *|  $(basename "${cmd%% *}"): |"
done
if command -v perf >/dev/null; then
  for cmd in "$true_bin" "$baton --version" "flock --version"; do
    # shellcheck disable=SC2086
    "${run[@]}" perf stat -r 300 -e task-clock,page-faults $cmd 2>&1 >/dev/null |
      grep -E "task-clock|page-faults|elapsed" | sed "s|^|  ${cmd##*/}: |"
  done
fi
echo "-- batond's own CPU time per invocation (schedstat of all its threads, 200 runs;"
echo "   on the same vCPU it adds to the wall time one for one)"
daemon_cpu_ns() { cat /proc/"$daemon_pid"/task/*/schedstat | awk '{s += $1} END {print s}'; }
for cmd in "$baton --socket $socket ping" "$baton --socket $socket run --lock x -- $true_bin"; do
  before=$(daemon_cpu_ns)
  for _ in $(seq 200); do
    # shellcheck disable=SC2086
    "${run[@]}" $cmd >/dev/null
  done
  after=$(daemon_cpu_ns)
  echo "  baton ${cmd#*--socket $socket }: $(( (after - before) / 200 / 1000 )) us of batond CPU"
done
echo "  shared libraries: baton $(ldd "$baton" | wc -l) (incl. vdso, ld.so), flock $(ldd "$(command -v flock)" | wc -l)"
echo "  binary text: baton $(size "$baton" | awk 'NR==2{print $1}') B, flock $(size "$(command -v flock)" | awk 'NR==2{print $1}') B"

if command -v strace >/dev/null; then
  echo "-- syscalls per run (strace -f -c, parent and child together)"
  for cmd in "flock $lockfile $true_bin" "$baton --socket $socket run --lock x -- $true_bin"; do
    # shellcheck disable=SC2086
    "${run[@]}" strace -f -c -o "$scratch/count" $cmd >/dev/null 2>&1 || true
    echo "  $(basename "${cmd%% *}"): $(awk '$NF == "total" {print $4}' "$scratch/count") syscalls"
  done
  echo "-- timeline of one baton run (strace -f -ttt; strace inflates every syscall,"
  echo "   so read the order and the gaps, not the absolute sum)"
  # Warm the page cache and the daemon's lock file first.
  "${run[@]}" "$baton" --socket "$socket" run --lock x -- "$true_bin"
  "${run[@]}" strace -f -ttt -s 200 -o "$scratch/trace" "$baton" --socket "$socket" run --lock x -- "$true_bin"
  python3 - "$scratch/trace" <<'EOF'
import re, sys
lines = [l.rstrip("\n") for l in open(sys.argv[1])]
events = []
for l in lines:
    m = re.match(r"(\d+)\s+(\d+\.\d+)\s+(.*)", l)
    if m:
        events.append((int(m.group(1)), float(m.group(2)), m.group(3)))
if not events:
    sys.exit(0)
parent = events[0][0]
t0 = events[0][1]
marks = []
def mark(label, pred, pid_ok=lambda p: True):
    for pid, t, text in events:
        if pid_ok(pid) and pred(text):
            marks.append((t, label)); return
mark("execve baton", lambda s: s.startswith("execve("))
mark("main() runs (fcntl(0, F_GETFD))", lambda s: s.startswith("fcntl(0, F_GETFD"))
mark("socket()", lambda s: s.startswith("socket(AF_UNIX"))
mark("connect() returned", lambda s: s.startswith("connect("))
mark("greeting received", lambda s: s.startswith("recvmsg(") and "baton" in s)
mark("lock request sent", lambda s: s.startswith("sendto(") and r'\"op\":\"lock\"' in s)
mark("lock granted (reply)", lambda s: s.startswith("recvmsg(") and "token" in s)
mark("vfork()", lambda s: s.startswith("vfork(") or s.startswith("clone(") or s.startswith("clone3("), lambda p: p == parent)
mark("child execve(true) called", lambda s: s.startswith("execve(") and "true" in s, lambda p: p != parent)
mark("child execve(true) done", lambda s: s.startswith("<... execve resumed>"), lambda p: p != parent)
mark("child exited", lambda s: s.startswith("exit_group("), lambda p: p != parent)
mark("unlock sent", lambda s: s.startswith("sendto(") and r'\"op\":\"unlock\"' in s)
mark("baton exit_group", lambda s: s.startswith("exit_group("), lambda p: p == parent)
marks.sort()
prev = t0
for t, label in marks:
    print(f"  {1e3 * (t - t0):7.3f} ms  (+{1e3 * (t - prev):6.3f})  {label}")
    prev = t
count = {}
for pid, t, text in events:
    if pid != parent: continue
    name = text.split("(")[0]
    count[name] = count.get(name, 0) + 1
print("  parent syscalls: " + ", ".join(f"{k} {v}" for k, v in sorted(count.items(), key=lambda kv: -kv[1])[:14]))
EOF
fi
stop_daemon
