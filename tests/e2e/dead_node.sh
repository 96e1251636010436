#!/usr/bin/env bash
# e2e.*_dead_node: a node dies while its batond holds a lock: kill -9 of that
# node's whole FUSE client (ceph-fuse or glusterfs), which is what the volume's
# server sees of a node that lost power. Measures and checks what happens.
#
#   tests/e2e/dead_node.sh BATOND BATON
#
# E2E_FS=ceph (default here) or gluster, see e2e_lib.sh. Three mounts: node2
# is the survivor; node1 dies and is left to the file system's own timeout
# (CephFS: the MDS evicts it after session_autoclose, set here with
# session_timeout to E2E_SESSION_TIMEOUT, default 30 s, Ceph's minimum; Ceph's
# default autoclose is 300 s);
# node3 dies and is evicted at once by the operator (CephFS only: `ceph tell
# mds.a client evict`; GlusterFS has nothing to evict, its locks go with the
# client's connection). For each dead node it:
#   1. has the dead-to-be node hold 'dead-N' through `baton run` (command:
#      sleep), and node2 wait for it with `baton run -w`;
#   2. kill -9s the node's FUSE client (the mount then answers ENOTCONN);
#   3. measures when node2 is granted the lock (must be within
#      E2E_DEAD_MAX, default 150 s, for the timeout case; 30 s after the
#      eviction), when and how the dead node's `baton run` ends (exit status,
#      message) and what its batond logged;
#   4. node2 publishes fenced.N under its (newer) token; then a late write
#      with the dead holder's token (the dead node back with a fresh mount and
#      batond, publishing with the token its job was given) must be refused
#      with 76, and leave the content alone.
# Prints the figures as a table on stdout ("FIGURES ..." lines). Exit 77 as
# the other e2e tests when the file system cannot run here.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
E2E_FS=${E2E_FS:-ceph}
# shellcheck source=tests/e2e/e2e_lib.sh
source "$here/e2e_lib.sh"

dead_max=${E2E_DEAD_MAX:-150}
session_timeout=${E2E_SESSION_TIMEOUT:-30}

if [[ $# -ne 2 ]]; then
    echo "usage: dead_node.sh BATOND BATON" >&2
    exit 64
fi
batond=$(realpath "$1")
baton=$(realpath "$2")
[[ -x "$batond" ]] || fail "batond not executable: $1"
[[ -x "$baton" ]] || fail "baton not executable: $2"

e2e_require_fs
e2e_on_cleanup() {
    local f pid
    for f in "$tmp"/hold-*.pid; do
        [[ -f "$f" ]] || continue
        pid=$(<"$f")
        if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q '^sleep 600'; then kill -KILL "$pid"; fi
    done
}
E2E_DEADLINE=${E2E_DEADLINE:-280} e2e_init e2e-dead-node

if [[ "$E2E_FS" == ceph ]]; then
    e2e_volume_up 3 --session-timeout "$session_timeout" --autoclose "$session_timeout"
else
    e2e_volume_up 3
fi

sock() { printf '%s/node%d/baton.sock' "$tmp" "$1"; }
on() {
    local i=$1
    shift
    BATON_SOCKET=$(sock "$i") "$@"
}
start_daemon() {
    local i=$1 node="node$1" s k
    s=$(sock "$i")
    mkdir -p "$(dirname "$s")"
    "$batond" --root "${mounts[i - 1]}" --socket "$s" --pod-name "$node" --node-name "$node" \
        --log-level debug --lock-check-interval 1 >>"$tmp/batond-$node.log" 2>&1 </dev/null &
    daemon_pid[$node]=$!
    for ((k = 0; k < 100; k++)); do
        if on "$i" "$baton" ping >/dev/null 2>&1; then return 0; fi
        kill -0 "${daemon_pid[$node]}" 2>/dev/null || fail "batond on $node exited at start-up: $(tail -n 3 "$tmp/batond-$node.log")"
        sleep 0.1
    done
    fail "batond on $node does not answer ping after 10 s"
}
for i in 1 2 3; do start_daemon "$i"; done

declare -A rc_exit=()

# dead_node DEAD_INDEX HOW(timeout|evict)
dead_node() {
    local d=$1 how=$2 name="dead-$1" k t_kill fuse rc tok_old tok_new v ready
    log "node$d holds '$name'; node2 waits for it; then node$d's FUSE client is killed with SIGKILL ($how)"
    # shellcheck disable=SC2016 # expanded by sh -c
    on "$d" "$baton" run --lock "$name" -- \
        sh -c 'echo "$BATON_TOKEN" >"$0.token.tmp" && mv "$0.token.tmp" "$0.token"; echo $$ >"$0.pid"; exec sleep 600' \
        "$tmp/hold-$d" >"$tmp/hold-$d.out" 2>&1 &
    local holder=$!
    bg_pids+=("$holder")
    for ((k = 0; k < 100; k++)); do
        [[ -s "$tmp/hold-$d.token" && -s "$tmp/hold-$d.pid" ]] && break
        sleep 0.1
    done
    [[ -s "$tmp/hold-$d.token" ]] || fail "node$d did not get '$name' within 10 s"
    tok_old=$(<"$tmp/hold-$d.token")
    # shellcheck disable=SC2016 # expanded by sh -c
    on 2 "$baton" run --lock "$name" -w "$dead_max" -- sh -c 'echo "$BATON_TOKEN" >"$0.token.tmp" && mv "$0.token.tmp" "$0.token"' \
        "$tmp/wait-$d" >"$tmp/wait-$d.out" 2>&1 &
    local waiter=$!
    bg_pids+=("$waiter")
    # The waiter is queued at its daemon: status on node2 shows it waiting.
    ready=0
    for ((k = 0; k < 100; k++)); do
        if on 2 "$baton" status --json 2>/dev/null | grep -q "\"$name\""; then ready=1; break; fi
        sleep 0.1
    done
    ((ready)) || fail "node2's status never showed '$name'"
    [[ ! -e "$tmp/wait-$d.token" ]] || fail "node2 got '$name' while node$d held it"

    fuse=$(e2e_fuse_pid "$d") || fail "no FUSE client process found for ${mounts[d - 1]}"
    t_kill=$EPOCHREALTIME
    kill -KILL "$fuse"
    log "killed node$d's FUSE client (pid $fuse) holding token $tok_old"
    if [[ "$how" == evict ]]; then
        "$e2e_volume_script" evict "$tmp/vol" "node$d" 2>>"$tmp/evict.log" || fail "evicting node$d failed: $(cat "$tmp/evict.log")"
        log "evicted node$d's session at the MDS $(since "$t_kill")s after the kill"
    fi

    # Watch both sides until node2 is granted and node$d's baton run ended.
    local grant="" ended="" limit=$dead_max
    [[ "$how" == evict ]] && limit=30
    while :; do
        if [[ -z "$grant" && -s "$tmp/wait-$d.token" ]]; then grant=$(since "$t_kill"); fi
        if [[ -z "$ended" ]] && ! kill -0 "$holder" 2>/dev/null; then
            ended=$(since "$t_kill")
            rc=0
            wait "$holder" || rc=$?
            rc_exit[$d]=$rc
        fi
        [[ -n "$grant" && -n "$ended" ]] && break
        if [[ $(awk -v a="$t_kill" -v b="$EPOCHREALTIME" -v l="$limit" 'BEGIN { print (b - a > l) }') == 1 ]]; then
            [[ -n "$grant" ]] || fail "node2 was not granted '$name' within ${limit}s of node$d dying ($how)"
            fail "node$d's baton run still runs ${limit}s after its node died: $(cat "$tmp/hold-$d.out")"
        fi
        sleep 0.05
    done
    wait "$waiter" || fail "node2's baton run for '$name' failed: $(cat "$tmp/wait-$d.out")"
    tok_new=$(<"$tmp/wait-$d.token")
    ((tok_new > tok_old)) || fail "node2's token $tok_new for '$name' does not exceed the dead holder's $tok_old"
    local cmd
    cmd=$(<"$tmp/hold-$d.pid")
    if [[ -d "/proc/$cmd" && "$(awk '{ print $3 }' "/proc/$cmd/stat" 2>/dev/null)" != Z ]]; then
        fail "node$d's command (pid $cmd) outlived its baton run"
    fi
    log "node2 granted '$name' ${grant}s after node$d died (token $tok_new > $tok_old);" \
        "node$d's baton run exited ${rc_exit[$d]} ${ended}s after: $(tr '\n' ' ' <"$tmp/hold-$d.out")"
    grep -E '"level":"(warn|error)"|\[(warning|error)\]| (warn|error) ' "$tmp/batond-node$d.log" | grep -F "$name" | head -n 3 |
        sed "s/^/  batond node$d: /" || true
    if kill -0 "${daemon_pid[node$d]}" 2>/dev/null; then
        log "node$d's batond still runs on its dead mount"
    else
        log "node$d's batond exited"
    fi

    # The late write: node2 publishes under its token, then the dead node,
    # back with a fresh mount and batond, publishes with its old token.
    echo "from node2 token $tok_new" >"$tmp/pub-new-$d"
    on 2 "$baton" publish --token "$tok_new" "$tmp/pub-new-$d" "fenced.$d" >/dev/null ||
        fail "node2's publish of fenced.$d under token $tok_new failed"
    stop_pid "${daemon_pid[node$d]}"
    unset "daemon_pid[node$d]"
    fusermount -uz "${mounts[d - 1]}" 2>/dev/null || umount -l "${mounts[d - 1]}" 2>/dev/null || true
    if [[ "$E2E_FS" == ceph ]]; then
        ceph-fuse -c "$tmp/vol/.ceph/ceph.conf" --id "node$d" "${mounts[d - 1]}" >"$tmp/remount-$d.out" 2>&1 ||
            fail "could not mount node$d again: $(cat "$tmp/remount-$d.out")"
    else
        mount -t glusterfs -o "log-file=$tmp/remount-$d.log,attribute-timeout=0,entry-timeout=0,negative-timeout=0,direct-io-mode=enable" \
            "$(<"$tmp/vol/.gluster/host"):/$(<"$tmp/vol/.gluster/volume")" "${mounts[d - 1]}" || fail "could not mount node$d again"
    fi
    for ((k = 0; k < 100; k++)); do
        stat "${mounts[d - 1]}/fenced.$d" >/dev/null 2>&1 && break
        sleep 0.1
    done
    start_daemon "$d"
    echo "late from node$d token $tok_old" >"$tmp/pub-old-$d"
    rc=0
    on "$d" "$baton" publish --token "$tok_old" "$tmp/pub-old-$d" "fenced.$d" >"$tmp/late-$d.out" 2>&1 || rc=$?
    ((rc == 76)) || fail "the late publish with the dead holder's token $tok_old exited $rc, expected 76: $(cat "$tmp/late-$d.out")"
    v=$(on 2 "$baton" cat "fenced.$d") || fail "node2 cannot read fenced.$d"
    [[ "$v" == "from node2 token $tok_new" ]] || fail "fenced.$d holds '$v' after the refused late publish"
    log "late publish with token $tok_old from node$d (back with a new mount) refused with 76; fenced.$d unchanged"
    echo "FIGURES $(e2e_fs_name) $how: grant ${grant}s, dead node's baton run exit ${rc_exit[$d]} after ${ended}s, late write 76" >>"$tmp/figures"
}

dead_node 1 timeout
if [[ "$E2E_FS" == ceph ]]; then dead_node 3 evict; fi
cat "$tmp/figures"
log "PASS"
