#!/usr/bin/env bash
# e2e.read_races: reads that race a publish from another node never fail.
#
#   tests/e2e/read_races.sh BATOND BATON HANDOFF_WORKER
#
# Two "nodes" share a real network filesystem (two GlusterFS FUSE mounts of
# one volume, direct I/O on), one batond per mount. node1 publishes a file of
# E2E_BLOCKS (280) 4 KiB blocks, about the size of a 20,000-line file,
# E2E_PUBLISHES (150) times through libbaton (handoff_worker publish), while
#   - node2 runs `baton cat` over and over (and node1 too, on the writer's
#     own mount), each read checked whole (handoff_worker check-file);
#   - node2 runs a libbaton reader (handoff_worker read --client-only) that
#     opens the file through Client::open until it has seen the last version.
#     It counts, without failing, versions the daemon reports off the
#     content's: with gluster's stock volume options (quick-read caches small
#     files) the version records themselves can be read stale, which is not
#     this test's subject (see the summary line).
# Every read must succeed (no exit 64 "is not a regular file", no 70 "Stale
# file handle": GlusterFS answers ESTALE, or ENOENT, to a lookup a rename
# overtook) and be one whole version. Issue 7 measured 144 of 150 failed
# `baton cat` on node2 before batond retried such races.
#
# The filesystem comes from fs_up/fs_down below: swap them to run the same
# test on another shared filesystem. Exit 77 (CTest SKIP_RETURN_CODE) when
# it cannot run here. Everything is torn down on any exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
publishes=${E2E_PUBLISHES:-150}
blocks=${E2E_BLOCKS:-280}
deadline=${E2E_DEADLINE:-240}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
skip() {
    printf 'SKIP: %s\n' "$*"
    exit 77
}

# ------------------------------------------------------------ filesystem
# fs_check: skip unless the filesystem can be made here.
# fs_up DIR N: N mounts of one shared filesystem, their paths on stdout.
# fs_down DIR: undo fs_up (safe after a failed or partial fs_up).
gluster_volume="$here/../../scripts/gluster-volume.sh"
fs_check() {
    ((EUID == 0)) || skip "needs root (glusterd, FUSE mounts)"
    [[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
    command -v glusterd >/dev/null || skip "glusterfs-server is not installed (scripts/install-deps.sh --with-gluster)"
    command -v mount.glusterfs >/dev/null || skip "glusterfs-client is not installed"
    [[ -n "$(hostname -I 2>/dev/null | awk '{print $1}')" ]] || skip "no non-loopback address for a gluster brick"
}
# Gluster's stock volume options (open-behind, md-cache on): with them a
# fresh lookup's handle goes stale under a rename far more often.
fs_up() { GLUSTER_LOCK_WAIT=${GLUSTER_LOCK_WAIT:-180} "$gluster_volume" up "$1" "$2" --stock-volume; }
fs_down() { "$gluster_volume" down "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------------ setup
if [[ $# -ne 3 ]]; then
    echo "usage: read_races.sh BATOND BATON HANDOFF_WORKER" >&2
    exit 64
fi
batond=$(realpath "$1")
baton=$(realpath "$2")
worker=$(realpath "$3")
fs_check

tmp=$(mktemp -d /tmp/baton-e2e-reads.XXXXXX)
declare -A daemon_pid=()
bg_pids=()
volume_up=0
watchdog=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n "$watchdog" ]]; then kill "$watchdog" 2>/dev/null; fi
    : >"$tmp/stop"
    for pid in "${bg_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for pid in "${daemon_pid[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    wait 2>/dev/null
    if ((rc != 0)); then
        for f in "$tmp"/batond-*.log; do
            [[ -f "$f" ]] || continue
            printf -- '--- last lines of %s\n' "$(basename "$f")" >&2
            tail -n 20 "$f" >&2
        done
    fi
    if ((volume_up)); then fs_down "$tmp/fs"; fi
    if [[ -n "${E2E_KEEP:-}" ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'echo "FAIL: deadline of ${deadline}s reached" >&2; exit 124' TERM
(
    exec >/dev/null 2>&1
    sleep "$deadline" &
    nap=$!
    trap 'kill "$nap"; exit 0' TERM
    wait "$nap" && kill -TERM $$
) &
watchdog=$!

log "bringing up the shared filesystem with 2 mounts"
volume_up=1
fs_up "$tmp/fs" 2 >"$tmp/mounts"
mapfile -t mounts <"$tmp/mounts"
((${#mounts[@]} == 2)) || fail "expected 2 mounts, got: ${mounts[*]}"

sock() { printf '%s/node%d/baton.sock' "$tmp" "$1"; }
on() {
    local i=$1
    shift
    BATON_SOCKET=$(sock "$i") "$@"
}
start_daemon() {
    local i=$1 k
    mkdir -p "$tmp/node$i"
    "$batond" --root "${mounts[i - 1]}" --socket "$(sock "$i")" --pod-name "node$i" \
        --node-name "node$i" --poll-interval 0.1 >>"$tmp/batond-node$i.log" 2>&1 </dev/null &
    daemon_pid[node$i]=$!
    for ((k = 0; k < 100; k++)); do
        if on "$i" "$baton" ping >/dev/null 2>&1; then return 0; fi
        kill -0 "${daemon_pid[node$i]}" 2>/dev/null || fail "batond on node$i exited at start-up"
        sleep 0.1
    done
    fail "batond on node$i does not answer ping after 10 s"
}
start_daemon 1
start_daemon 2

# cat_reader NODE: `baton cat` until $tmp/stop; one line per read:
# "ok K", "torn WHY", "error RC STDERR".
cat_reader() {
    local i=$1 out="$tmp/cat-node$1" rc check
    while [[ ! -e "$tmp/stop" ]]; do
        rc=0
        on "$i" "$baton" cat big.bin >"$out" 2>"$out.err" || rc=$?
        if ((rc != 0)); then
            echo "error $rc $(head -c 200 "$out.err" | tr '\n' ' ')"
        elif check=$("$worker" check-file --file "$out"); then
            echo "ok ${check#whole }"
        else
            echo "torn $check"
        fi
    done >"$tmp/reads-node$i"
}

# ------------------------------------------------------------------ the race
"$worker" publish --socket "$(sock 1)" --path big.bin --first 1 --count 1 --blocks "$blocks" \
    >/dev/null || fail "the first publish on node1 failed"
rm -f "$tmp/stop"
cat_reader 2 &
cat_readers=($!)
cat_reader 1 &
cat_readers+=($!)
bg_pids+=("${cat_readers[@]}")
last=$((publishes + 1))
"$worker" read --socket "$(sock 2)" --root "${mounts[1]}" --path big.bin --until "$last" \
    --client-only --whole-only --seconds $((deadline - 30)) >"$tmp/lib-reader" 2>&1 &
lib_reader=$!
bg_pids+=("$lib_reader")

log "node1 publishes $publishes versions of a $((blocks * 4)) KiB file; node2 (and node1) read it meanwhile"
t0=$EPOCHREALTIME
"$worker" publish --socket "$(sock 1)" --path big.bin --first 2 --count "$publishes" \
    --blocks "$blocks" >"$tmp/published" || fail "publishing on node1 failed: $(tail -n 3 "$tmp/published")"
publish_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
lib_rc=0
wait "$lib_reader" || lib_rc=$?
: >"$tmp/stop"
wait "${cat_readers[@]}"

summary=""
for i in 2 1; do
    f="$tmp/reads-node$i"
    n=$(wc -l <"$f")
    bad=$(grep -vc '^ok ' "$f" || true)
    distinct=$(awk '$1 == "ok" { print $2 }' "$f" | sort -u | wc -l)
    if ((bad > 0)); then
        grep -v '^ok ' "$f" | cut -c1-160 | sort | uniq -c | sort -rn | head -n 8 >&2
        fail "$bad of $n 'baton cat' on node$i failed or were torn (above)"
    fi
    ((distinct >= 2)) || fail "node$i's 'baton cat' saw only $distinct version(s) in $n reads: it did not overlap the publishes"
    summary+=" baton cat on node$i: $n reads, $distinct versions, 0 failed;"
done
((lib_rc == 0)) || fail "node2's libbaton reader failed (exit $lib_rc): $(tail -n 3 "$tmp/lib-reader")"
log "PASS in ${publish_s}s of publishing:$summary libbaton reader on node2: $(tail -n 1 "$tmp/lib-reader")"
