#!/usr/bin/env bash
# e2e.hung_mount_stop: batond on a GlusterFS mount whose FUSE client is
# stopped (kill -STOP: what a hard NFS mount with a dead server does).
#
#   tests/e2e/hung_mount_stop.sh BATOND BATON
#
#   1. brings up a one-brick volume mounted twice (node1, node2) and a batond
#      on each (--shutdown-grace 1);
#   2. through node1: a `baton run` holder whose command ignores SIGTERM, and
#      once the FUSE client of node1 is stopped, a publish and a read in
#      flight (stuck in the kernel on the daemon's thread pool);
#   3. checks that `baton ping` answers, and that `baton status` answers
#      within E2E_STATUS_MAX (1.5 s, process start included) and marks
#      what it could not read ("unknown:");
#   4. SIGTERMs node1's batond: within --shutdown-grace + 1 s its socket must
#      be gone and its main thread exited (the process itself may linger in
#      the kernel's FUSE_FLUSH of its open files, which no signal ends);
#   5. resumes the FUSE client (kill -CONT), checks that batond is reaped
#      with exit 0 and that node2 then gets the lock (the kernel dropped
#      node1's OFD lock with the descriptors).
# Prints the figures (status latency, ping latency, time to exit).
#
# Exit 77 (CTest SKIP_RETURN_CODE) when GlusterFS is not installed, not root,
# or /dev/fuse is missing. The FUSE client is resumed first in every
# teardown, before anything is unmounted.
set -euo pipefail

E2E_FS=gluster
# shellcheck source=tests/e2e/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
deadline=${E2E_DEADLINE:-200}
status_max_ms=${E2E_STATUS_MAX:-1500}
grace_s=1
exit_max_ms=$(((grace_s + 1) * 1000))
now_ms() { echo $(($(date +%s%N) / 1000000)); }

[[ $# -eq 2 ]] || {
    echo "usage: hung_mount_stop.sh BATOND BATON" >&2
    exit 64
}
batond=$(realpath "$1")
baton=$(realpath "$2")
[[ -x "$batond" && -x "$baton" ]] || fail "binaries not executable: $*"

e2e_require_fs

fuse_pid=""
e2e_failure_logs=("*.log" "*.err")
e2e_on_cleanup() {
    local node
    # First of all: a stopped FUSE client would hang every step below.
    if [[ -n "$fuse_pid" ]]; then kill -CONT "$fuse_pid" 2>/dev/null; fi
    for node in "${!daemon_pid[@]}"; do kill -KILL "${daemon_pid[$node]}" 2>/dev/null; done
    daemon_pid=()
    pkill -KILL -f "^sleep 3001$" 2>/dev/null # the stubborn command, by its unique argv
}
e2e_init hung
e2e_volume_up 2

sock() { printf '%s/node%d.sock' "$tmp" "$1"; }
b() { # b NODE ARGS...: the CLI against node NODE's daemon
    local i=$1
    shift
    BATON_SOCKET=$(sock "$i") "$baton" "$@"
}

start_daemon() {
    local i=$1 node="node$1" k
    "$batond" --root "${mounts[i - 1]}" --socket "$(sock "$i")" --pod-name "$node" \
        --node-name "$node" --log-level debug --lock-check-interval 1 \
        --shutdown-grace "$grace_s" >>"$tmp/batond-$node.log" 2>&1 </dev/null &
    daemon_pid[$node]=$!
    for ((k = 0; k < 100; k++)); do
        if b "$i" ping >/dev/null 2>&1; then return 0; fi
        kill -0 "${daemon_pid[$node]}" 2>/dev/null || fail "batond on $node exited at start-up"
        sleep 0.1
    done
    fail "batond on $node does not answer ping after 10 s"
}
start_daemon 1
start_daemon 2

# The glusterfs client process serving node1's mount.
fuse_pid=$(e2e_fuse_pid 1) || fail "no glusterfs client process for ${mounts[0]}"

# A holder whose command ignores SIGTERM, so it holds through the grace.
b 1 run --lock hung/x --kill-after 3 -- sh -c "trap '' TERM; echo \$\$ > $tmp/held; exec sleep 3001" \
    >"$tmp/holder.out" 2>"$tmp/holder.err" &
bg_pids+=($!)
for ((k = 0; k < 100; k++)); do [[ -s "$tmp/held" ]] && break; sleep 0.1; done
[[ -s "$tmp/held" ]] || fail "the holder did not get the lock"
echo before >"$tmp/payload"
b 1 publish "$tmp/payload" data/before >/dev/null || fail "publish before the hang failed"

log "stopping the FUSE client of node1 (pid $fuse_pid)"
kill -STOP "$fuse_pid"
# A publish and a read in flight on the stopped mount.
b 1 publish "$tmp/payload" data/during >"$tmp/publish.out" 2>"$tmp/publish.err" &
bg_pids+=($!)
b 1 cat data/before >"$tmp/cat.out" 2>"$tmp/cat.err" &
bg_pids+=($!)
sleep 1.5 # let them and a lock check reach the stuck mount

t=$(now_ms)
b 1 ping >/dev/null 2>"$tmp/ping.err" || fail "ping failed with the mount stopped: $(cat "$tmp/ping.err")"
ping_ms=$(($(now_ms) - t))

t=$(now_ms)
timeout 10 "$baton" --socket "$(sock 1)" status >"$tmp/status.out" 2>"$tmp/status.err" ||
    fail "status failed with the mount stopped (exit $?): $(cat "$tmp/status.err")"
status_ms=$(($(now_ms) - t))
cat "$tmp/status.out"
((status_ms <= status_max_ms)) || fail "status took ${status_ms} ms with the mount stopped (max ${status_max_ms})"
grep -q '^unknown: ' "$tmp/status.out" || fail "status does not mark what it could not read"
grep -q 'hung/x' "$tmp/status.out" || fail "status does not show the local holder"
# A second status while the first scan is still stuck: as quick.
t=$(now_ms)
timeout 10 "$baton" --socket "$(sock 1)" status --json >"$tmp/status2.out" 2>&1 || fail "second status failed"
status2_ms=$(($(now_ms) - t))
grep -q '"unknown"' "$tmp/status2.out" || fail "second status does not mark what it could not read"

log "SIGTERM to batond on node1"
pid1=${daemon_pid[node1]}
# Done, as far as the daemon can be: its socket is gone and its main thread
# has exited. The process itself cannot end while a FUSE_FLUSH of one of its
# files waits for the stopped client: the kernel sends it on every close(2)
# and waits for it uninterruptibly (fs/fuse/file.c, args.force).
done_stopping() {
    [[ ! -e "$(sock 1)" ]] || return 1
    local st
    st=$(awk '{print $3}' "/proc/$pid1/stat" 2>/dev/null) || return 0
    [[ -z "$st" || "$st" == Z ]]
}
t=$(now_ms)
kill -TERM "$pid1"
stopped=0
while (($(now_ms) - t < 15000)); do
    if done_stopping; then
        stopped=1
        break
    fi
    sleep 0.02
done
exit_ms=$(($(now_ms) - t))
if ((!stopped)); then
    for task in /proc/"$pid1"/task/*; do # where it is stuck
        printf '%s %s %s\n' "${task##*/}" "$(awk '{print $3}' "$task/stat")" "$(cat "$task/wchan" 2>/dev/null)" >&2
        head -n 12 "$task/stack" >&2 2>/dev/null
    done
    fail "batond still runs ${exit_ms} ms after SIGTERM with the mount stopped"
fi
((exit_ms <= exit_max_ms)) || fail "batond took ${exit_ms} ms to stop (max ${exit_max_ms})"
gone_before_resume=0
kill -0 "$pid1" 2>/dev/null || gone_before_resume=1

log "resuming the FUSE client"
kill -CONT "$fuse_pid"
fuse_pid=""
t=$(now_ms)
set +e
wait "$pid1"
code=$?
set -e
reaped_ms=$(($(now_ms) - t))
unset 'daemon_pid[node1]'
((code == 0)) || fail "batond exited $code"
t=$(now_ms)
b 2 run --lock hung/x --timeout 60 -- true 2>"$tmp/next.err" || fail "node2 did not get the lock after the mount came back: $(cat "$tmp/next.err")"
takeover_ms=$(($(now_ms) - t))

printf 'FIGURES: hung mount: ping %d ms, status %d ms (second %d ms); batond done (socket removed, main thread exited) %d ms after SIGTERM (grace %d s); process %s, reaped %d ms after the mount resumed; lock on node2 %d ms after that\n' \
    "$ping_ms" "$status_ms" "$status2_ms" "$exit_ms" "$grace_s" \
    "$( ((gone_before_resume)) && echo "gone before the resume" || echo "held by the kernel's FUSE flush until the resume")" \
    "$reaped_ms" "$takeover_ms"
log "PASS"
