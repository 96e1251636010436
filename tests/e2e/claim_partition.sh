#!/usr/bin/env bash
# e2e.claim_partition: a claimed queue item has one owner, across a network
# partition.
#
#   tests/e2e/claim_partition.sh BATOND BATON
#
# Node H mounts a one-brick GlusterFS volume (fast failover: the brick drops
# a silent client's locks after ~5 s) as usual; node P mounts it from its
# own network namespace (a veth pair with addresses of a private range), so
# that P can be cut off silently (both ends of the veth set down: packets
# are dropped, no reset is sent) and healed. P runs two batond "pods":
#   P1, --lock-check-interval 0.5: its `baton claim q1 -- CMD` holds item A;
#   P2, --lock-check-interval 600 (never checks in time): its
#       `baton claim q2 -- CMD` holds item B, and CMD ends (exit 0, so baton
#       acknowledges) only after the partition healed.
# Then, while P is cut off, H's consumers must claim A and B (the brick
# dropped P's locks), and they keep them until the end. Required:
#   - P1's baton claim is told: it stops its CMD and exits 74, within 30 s;
#   - P2's stale ack is refused (baton claim exits 74) and touches nothing:
#     H's claimed files stay in cur/;
#   - H's consumers then finish A and B (ack): each item completed exactly
#     once by H, and the queues end empty.
# Issue 7 saw the stale consumer never told, and its ack delete the file the
# new consumer was processing.
#
# Exit 77 (CTest SKIP_RETURN_CODE) when GlusterFS, root, /dev/fuse or ip(8)
# network namespaces are missing. Everything (mounts, namespace, daemons) is
# torn down on any exit.
set -euo pipefail

E2E_FS=gluster
# shellcheck source=tests/e2e/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

# ------------------------------------------------------------ filesystem
# The volume (node H's mount, mounts[0]) comes from e2e_lib.sh. p_mount_up:
# node P's mount of it, made from network namespace $netns, next to H's
# (node2). fs_partition / fs_heal: cut P off silently, and back.
# p_mount_down: undo p_mount_up (safe after a partial one).
netns="baton-p$$"
veth_host="vbh$$"
veth_ns="vbn$$"
# A private /30 of our own, picked by pid so parallel runs do not meet.
net_prefix="10.$((200 + $$ % 50)).$(($$ / 50 % 250))"
p_mount_up() {
    local dir=$tmp/vol host vol
    host=$(<"$dir/.gluster/host")
    vol=$(<"$dir/.gluster/volume")
    ip netns add "$netns"
    ip link add "$veth_host" type veth peer name "$veth_ns"
    ip link set "$veth_ns" netns "$netns"
    ip addr add "$net_prefix.1/30" dev "$veth_host"
    ip link set "$veth_host" up
    ip -n "$netns" addr add "$net_prefix.2/30" dev "$veth_ns"
    ip -n "$netns" link set lo up
    ip -n "$netns" link set "$veth_ns" up
    ip -n "$netns" route add default via "$net_prefix.1"
    mkdir -p "$dir/node2"
    # The FUSE client runs in the namespace; the mount is seen by everyone.
    nsenter --net="/run/netns/$netns" mount -t glusterfs \
        -o "log-file=$dir/.gluster/client-node2.log,attribute-timeout=0,entry-timeout=0,negative-timeout=0,direct-io-mode=enable" \
        "$host:/$vol" "$dir/node2"
    local k
    for ((k = 0; k < 100; k++)); do
        touch "$dir/node2/.probe" 2>/dev/null && break
        sleep 0.1
    done
    rm -f "$dir/node2/.probe"
}
fs_partition() {
    ip -n "$netns" link set "$veth_ns" down
    ip link set "$veth_host" down
}
fs_heal() {
    ip link set "$veth_host" up
    ip -n "$netns" link set "$veth_ns" up
    ip -n "$netns" route replace default via "$net_prefix.1"
}
p_mount_down() {
    local dir=$tmp/vol
    if grep -qs " $dir/node2 fuse" /proc/mounts; then
        umount "$dir/node2" 2>/dev/null || umount -l "$dir/node2" 2>/dev/null
    fi
    ip link del "$veth_host" 2>/dev/null
    ip netns del "$netns" 2>/dev/null
    return 0
}

# ------------------------------------------------------------------ setup
if [[ $# -ne 2 ]]; then
    echo "usage: claim_partition.sh BATOND BATON" >&2
    exit 64
fi
batond=$(realpath "$1")
baton=$(realpath "$2")
e2e_require_fs
{ command -v ip && command -v nsenter; } >/dev/null || skip "ip(8) or nsenter is missing"

e2e_failure_logs+=("*.err")
e2e_on_cleanup() {
    local f pid
    : >"$tmp/release"
    : >"$tmp/go"
    for f in "$tmp"/*.cmdpid; do
        [[ -f "$f" ]] && kill -KILL "$(<"$f")" 2>/dev/null
    done
    for pid in "${daemon_pid[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    daemon_pid=()
    wait 2>/dev/null
    # P's mount lies inside the volume's directory: unmounted before the volume.
    p_mount_down
}
e2e_init e2e-partition

log "bringing up node H's mount and node P's, P's from network namespace $netns"
GLUSTER_LOCK_WAIT=${GLUSTER_LOCK_WAIT:-180} e2e_volume_up 1 --fast-failover
p_mount_up
mount_h="${mounts[0]}"
mount_p="$tmp/vol/node2"

sock() { printf '%s/%s/baton.sock' "$tmp" "$1"; }
on() {
    local name=$1
    shift
    BATON_SOCKET=$(sock "$name") "$@"
}
# start_daemon NAME MOUNT CHECK_INTERVAL
start_daemon() {
    local name=$1 k
    mkdir -p "$tmp/$name"
    "$batond" --root "$2" --socket "$(sock "$name")" --pod-name "$name" --node-name "$name" \
        --poll-interval 0.1 --lock-check-interval "$3" >>"$tmp/batond-$name.log" 2>&1 </dev/null &
    daemon_pid[$name]=$!
    for ((k = 0; k < 100; k++)); do
        if on "$name" "$baton" ping >/dev/null 2>&1; then return 0; fi
        kill -0 "${daemon_pid[$name]}" 2>/dev/null || fail "batond $name exited at start-up"
        sleep 0.1
    done
    fail "batond $name does not answer ping after 10 s"
}
start_daemon H "$mount_h" 0.5
start_daemon P1 "$mount_p" 0.5
start_daemon P2 "$mount_p" 600

# wait_for SECONDS TEST...: polls TEST every 0.05 s.
wait_for() {
    local s=$1 j
    shift
    for ((j = 0; j < s * 20; j++)); do
        if "$@"; then return 0; fi
        sleep 0.05
    done
    return 1
}
alive() { [[ -d "/proc/$1" && "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]]; }
gone() { ! alive "$1"; }

# The items.
echo item-A | on H "$baton" enqueue queues/q1 - >"$tmp/id-A" || fail "enqueue of item A failed"
echo item-B | on H "$baton" enqueue queues/q2 - >"$tmp/id-B" || fail "enqueue of item B failed"

# P1 holds A: CMD runs until stopped. P2 holds B: CMD ends once $tmp/go
# exists (after the heal), exit 0, so baton claim acknowledges B.
# shellcheck disable=SC2016 # expanded by sh -c
on P1 "$baton" claim queues/q1 --timeout 10 --kill-after 2 -- \
    sh -c 'echo "$$" >"$0.tmp" && mv "$0.tmp" "$0" && exec sleep 300' "$tmp/P1.cmdpid" \
    >"$tmp/P1.out" 2>"$tmp/P1.err" &
claim_p1=$!
# shellcheck disable=SC2016 # expanded by sh -c
on P2 "$baton" claim queues/q2 --timeout 10 -- \
    sh -c 'echo "$$" >"$0.tmp" && mv "$0.tmp" "$0"; cat >/dev/null; while [ ! -e "$1" ]; do sleep 0.05; done; echo "P2 finished B"' \
    "$tmp/P2.cmdpid" "$tmp/go" >"$tmp/P2.out" 2>"$tmp/P2.err" &
claim_p2=$!
bg_pids+=("$claim_p1" "$claim_p2")
wait_for 20 test -s "$tmp/P1.cmdpid" || fail "P1 did not claim item A: $(cat "$tmp/P1.err")"
wait_for 20 test -s "$tmp/P2.cmdpid" || fail "P2 did not claim item B: $(cat "$tmp/P2.err")"
cmd_p1=$(<"$tmp/P1.cmdpid")
log "P1 holds item A (CMD pid $cmd_p1), P2 holds item B"

# H's consumers: each records its item, holds it until $tmp/release, then
# completes it (exit 0: ack).
# shellcheck disable=SC2016 # expanded by sh -c
consume='item=$(cat); echo "start $item" >>"$0"; while [ ! -e "$1" ]; do sleep 0.05; done; echo "done $item" >>"$0"'

log "partition: node P cut off"
fs_partition
t_cut=$EPOCHREALTIME
on H "$baton" claim queues/q1 --timeout 60 -- sh -c "$consume" "$tmp/H-history" "$tmp/release" \
    >"$tmp/H1.out" 2>"$tmp/H1.err" &
claim_h1=$!
on H "$baton" claim queues/q2 --timeout 60 -- sh -c "$consume" "$tmp/H-history" "$tmp/release" \
    >"$tmp/H2.out" 2>"$tmp/H2.err" &
claim_h2=$!
bg_pids+=("$claim_h1" "$claim_h2")
started_both() { [[ "$(grep -c '^start ' "$tmp/H-history" 2>/dev/null)" == 2 ]]; }
wait_for 60 started_both || fail "H did not claim items A and B within 60 s of the partition: $(cat "$tmp/H-history" 2>/dev/null)"
took_s=$(awk -v a="$t_cut" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
log "H claimed A and B ${took_s}s after the partition"

log "heal"
fs_heal
t_heal=$EPOCHREALTIME
p_works() { on P2 "$baton" ping >/dev/null 2>&1 && stat "$mount_p/queues" >/dev/null 2>&1; }
wait_for 60 p_works || fail "node P's mount did not come back within 60 s of the heal"

# P1: told, CMD stopped, exit 74.
wait_for 30 gone "$claim_p1" || fail "P1's baton claim still runs 30 s after the heal: its lost claim was never reported"
rc=0
wait "$claim_p1" || rc=$?
((rc == 74)) || fail "P1's baton claim exited $rc, expected 74 (claim lost): $(cat "$tmp/P1.err")"
wait_for 5 gone "$cmd_p1" || fail "P1's CMD (pid $cmd_p1) outlived its lost claim"
told_s=$(awk -v a="$t_cut" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
log "P1's baton claim exited 74 (${told_s}s after the cut): $(tail -n 1 "$tmp/P1.err")"

# P2: its CMD ends now with 0; the stale ack must be refused and touch nothing.
: >"$tmp/go"
wait_for 30 gone "$claim_p2" || fail "P2's baton claim still runs 30 s after its CMD was told to end"
rc=0
wait "$claim_p2" || rc=$?
((rc == 74)) || fail "P2's stale ack: baton claim exited $rc, expected 74 (claim lost, nothing removed): $(cat "$tmp/P2.err")"
for q in q1 q2; do
    n=$(find "$mount_h/queues/$q/cur" -type f | wc -l)
    ((n == 1)) || fail "queues/$q/cur holds $n files while H still processes its item: the stale consumer touched it"
done
log "P2's stale ack refused (exit 74): $(tail -n 1 "$tmp/P2.err"); H's items untouched"

# H completes both.
: >"$tmp/release"
for pid in "$claim_h1" "$claim_h2"; do
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || fail "H's baton claim exited $rc: $(cat "$tmp/H1.err" "$tmp/H2.err")"
done
for item in item-A item-B; do
    n=$(grep -c "^done $item\$" "$tmp/H-history" || true)
    ((n == 1)) || fail "H completed $item $n times, expected once"
done
left=$(find "$mount_h/queues" -type f | head -n 5)
[[ -z "$left" ]] || fail "files left in the queues after H acknowledged both items: $left"
heal_s=$(awk -v a="$t_heal" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
log "PASS: H claimed both items ${took_s}s after the cut and completed each once; P1 told (exit 74," \
    "CMD stopped), P2's stale ack refused (exit 74), all within ${heal_s}s of the heal"
