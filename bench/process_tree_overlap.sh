#!/usr/bin/env bash
# How long CMD's process tree runs on without the lock, per path, for
# docs/semantics.md ("Overlap"). CMD is sh with a grandchild, a setsid child
# and a double-forked daemon that all ignore SIGTERM (the worst case: each
# needs the SIGKILL at --kill-after). Per path, REPS runs:
#   lock loss    the lock file is removed (--lock-check-interval 0.1):
#                removal -> `baton run` returned (the tree is gone then)
#   daemon kill  batond gets SIGKILL (the lock goes at once):
#                kill -> `baton run` returned
#   wrapper kill `baton run` gets SIGKILL; a waiter in the same pod:
#                kill -> the waiter is granted the lock, and whether any of
#                the tree still ran then (the overlap; must be none)
#
# Usage: bench/process_tree_overlap.sh [--build DIR] [--reps N] [--kill-after S]
# shellcheck disable=SC2016  # single-quoted $VARS are for the inner sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"
reps=5
kill_after=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --kill-after) kill_after=$2; shift 2 ;;
    *) echo "process_tree_overlap.sh: unknown argument '$1'" >&2; exit 64 ;;
  esac
done
baton=$(realpath "$build/cli/baton")
batond=$(realpath "$build/daemon/batond")
work=$(mktemp -d "${TMPDIR:-/tmp}/baton-overlap.XXXXXX")
root=$work/root
mkdir -p "$root"
daemons=()
recorded=()
cleanup() {
  local pid
  for pid in "${recorded[@]}" "${daemons[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/leaf.sh" <<'EOF'
trap '' TERM
echo $$ >"$1.tmp" && mv "$1.tmp" "$1"
exec sleep 1000
EOF
cat >"$work/tree.sh" <<'EOF'
dir=$1 action=$2
leaf=$(dirname "$0")/leaf.sh
sh "$leaf" "$dir/grandchild" </dev/null >/dev/null 2>&1 &
setsid sh "$leaf" "$dir/session" </dev/null >/dev/null 2>&1 &
sh -c 'setsid sh "$0" "$1" & exit 0' "$leaf" "$dir/daemon" </dev/null >/dev/null 2>&1 &
until [ -s "$dir/grandchild" ] && [ -s "$dir/session" ] && [ -s "$dir/daemon" ]; do sleep 0.01; done
trap '' TERM
echo $$ >"$dir/cmd.tmp" && mv "$dir/cmd.tmp" "$dir/cmd"
case $action in
  lose) date +%s%N >"$dir/t0"; rm "$3" ;;
esac
while :; do sleep 0.05; done
EOF

now_ns() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
alive_any() {
  local f s
  for f in "$1"/grandchild "$1"/session "$1"/daemon "$1"/cmd; do
    s=$(cat "/proc/$(cat "$f")/stat" 2>/dev/null) || continue
    s=${s##*) }
    [ "${s%% *}" != Z ] && return 0
  done
  return 1
}
start_daemon() {  # start_daemon SOCKET [FLAGS]: pid in daemon_pid
  local socket=$1
  shift
  "$batond" --root "$root" --socket "$socket" --pod-name "p$RANDOM" --node-name n \
    --log-level error "$@" 2>/dev/null &
  daemon_pid=$!
  daemons+=("$daemon_pid")
  "$baton" --socket "$socket" ping --connect-timeout 10 >/dev/null
}
ready() { [ -s "$1/grandchild" ] && [ -s "$1/session" ] && [ -s "$1/daemon" ] && [ -s "$1/cmd" ]; }
wait_ready() { until ready "$1"; do sleep 0.01; done; recorded+=("$(cat "$1"/grandchild "$1"/session "$1"/daemon "$1"/cmd)"); }

echo "process_tree_overlap.sh  $(date -u '+%F %H:%M') UTC  $(uname -sr), $(nproc) cpus, load $(cut -d' ' -f1 /proc/loadavg), --kill-after $kill_after"
start_daemon "$work/a.sock" --lock-check-interval 0.1
for i in $(seq "$reps"); do
  d=$work/lose$i; mkdir -p "$d"
  "$baton" --socket "$work/a.sock" run --lock "lose$i" --kill-after "$kill_after" -- \
    sh "$work/tree.sh" "$d" lose "$root/.baton/locks/lose$i.lock" 2>/dev/null || true
  t1=$(now_ns)
  left=no; alive_any "$d" && left=YES
  echo "lock loss     rep $i: removal -> baton run returned $(ms "$(cat "$d/t0")" "$t1") ms; tree alive after: $left"
done

for i in $(seq "$reps"); do
  d=$work/dkill$i; mkdir -p "$d"
  start_daemon "$work/d$i.sock"
  "$baton" --socket "$work/d$i.sock" run --lock "dkill$i" --kill-after "$kill_after" -- \
    sh "$work/tree.sh" "$d" loop 2>/dev/null &
  wrapper=$!
  wait_ready "$d"
  t0=$(now_ns)
  kill -KILL "$daemon_pid"
  wait "$wrapper" 2>/dev/null || true
  t1=$(now_ns)
  left=no; alive_any "$d" && left=YES
  echo "daemon kill   rep $i: kill -9 batond -> baton run returned $(ms "$t0" "$t1") ms; tree alive after: $left"
done

for i in $(seq "$reps"); do
  d=$work/wkill$i; mkdir -p "$d"
  "$baton" --socket "$work/a.sock" run --lock "wkill$i" --kill-after "$kill_after" -- \
    sh "$work/tree.sh" "$d" loop 2>/dev/null &
  wrapper=$!
  wait_ready "$d"
  "$baton" --socket "$work/a.sock" run --lock "wkill$i" -- sh -c '
    date +%s%N >"$0/granted"
    for f in "$0"/grandchild "$0"/session "$0"/daemon "$0"/cmd; do
      s=$(cat "/proc/$(cat "$f")/stat" 2>/dev/null) || continue
      s=${s##*) }; [ "${s%% *}" != Z ] && echo "${f##*/}" >>"$0/overlap"
    done; true' "$d" &
  probe=$!
  until "$baton" --socket "$work/a.sock" status 2>/dev/null | awk -v n="wkill$i" '$1 == n && $NF == 1 { f = 1 } END { exit !f }'; do sleep 0.01; done
  t0=$(now_ns)
  kill -KILL "$wrapper"
  wait "$wrapper" 2>/dev/null || true
  wait "$probe" || true
  overlap=none; [ -s "$d/overlap" ] && overlap=$(tr '\n' ' ' <"$d/overlap")
  echo "wrapper kill  rep $i: kill -9 baton run -> next holder granted $(ms "$t0" "$(cat "$d/granted")") ms; running at the grant: $overlap"
done
