# shellcheck shell=bash
# e2e_lib.sh: what the cross-node end-to-end scripts share, sourced by them:
# logging, the skip rules, the temp dir, the clean-up on any exit, the
# deadline watchdog, and a shared volume on one of two real network
# filesystems, mounted once per "node":
#
#   E2E_FS=gluster  a one-brick GlusterFS volume (scripts/gluster-volume.sh)
#   E2E_FS=ceph     a single-node CephFS with ceph-fuse mounts
#                   (scripts/ceph-volume.sh)
#
# A script sets E2E_FS (or leaves the default, gluster) and sources this file
# after `set -euo pipefail`, then calls:
#
#   e2e_require_fs            exit 77 (CTest's SKIP_RETURN_CODE) with the
#                             reason when the file system cannot run here
#   e2e_init NAME             temp dir $tmp (local disk), traps, watchdog
#                             (E2E_DEADLINE seconds, default 240)
#   e2e_volume_up N [OPTS..]  the volume with N mounts: fills the array
#                             `mounts` (mounts[0] is node1)
#   e2e_volume_down           (the clean-up does it; for scripts that want it
#                             earlier)
#
# The clean-up kills $watchdog and the pids in `bg_pids`, calls the function
# e2e_on_cleanup if the script defines one, stops the daemons in the
# associative array `daemon_pid` (TERM, then KILL), prints the tail of the
# files in $tmp that match the globs in the array `e2e_failure_logs`
# (batond-*.log; a script may add its own) on failure, takes the volume down
# and removes $tmp (kept with E2E_KEEP=1). It keeps the script's exit status.
#
# E2E_GLUSTER_OPTS adds flags to `gluster-volume.sh up`, E2E_CEPH_OPTS to
# `ceph-volume.sh up`.

e2e_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
E2E_FS=${E2E_FS:-gluster}
case "$E2E_FS" in
gluster) e2e_volume_script="$e2e_lib_dir/../../scripts/gluster-volume.sh" ;;
ceph) e2e_volume_script="$e2e_lib_dir/../../scripts/ceph-volume.sh" ;;
*)
    printf 'e2e_lib: E2E_FS must be gluster or ceph, not %s\n' "$E2E_FS" >&2
    exit 64
    ;;
esac

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
skip() {
    printf 'SKIP: %s\n' "$*"
    exit 77
}
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# The file system's name in messages.
e2e_fs_name() { if [[ "$E2E_FS" == ceph ]]; then echo CephFS; else echo GlusterFS; fi; }

e2e_require_fs() {
    ((EUID == 0)) || skip "needs root ($E2E_FS daemons, FUSE mounts)"
    [[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
    if [[ "$E2E_FS" == gluster ]]; then
        command -v glusterd >/dev/null || skip "glusterfs-server is not installed (scripts/install-deps.sh --with-gluster)"
        command -v mount.glusterfs >/dev/null || skip "glusterfs-client is not installed"
        [[ -n "$(hostname -I 2>/dev/null | awk '{print $1}')" ]] || skip "no non-loopback address for a gluster brick"
    else
        local b
        for b in ceph-mon ceph-osd ceph-mds ceph-fuse ceph; do
            command -v "$b" >/dev/null || skip "$b is not installed (scripts/install-deps.sh --with-ceph)"
        done
    fi
}

declare -A daemon_pid=()
bg_pids=()
watchdog=""
e2e_failure_logs=("batond-*.log") # globs under $tmp, tailed on failure
e2e_volume_is_up=0
mounts=()

stop_pid() { # pid: TERM, wait up to 3 s, KILL
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

e2e_cleanup() {
    local rc=$? node pid f g
    trap - EXIT INT TERM
    set +e
    if [[ -n "$watchdog" ]]; then kill "$watchdog" 2>/dev/null; fi
    for pid in "${bg_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    if [[ "$(type -t e2e_on_cleanup)" == function ]]; then e2e_on_cleanup; fi
    if ((rc != 0)); then
        for node in "${!daemon_pid[@]}"; do
            if ! kill -0 "${daemon_pid[$node]}" 2>/dev/null; then
                echo "note: batond on $node had died before the clean-up" >&2
            fi
        done
    fi
    for node in "${!daemon_pid[@]}"; do stop_pid "${daemon_pid[$node]}"; done
    wait 2>/dev/null
    if ((rc != 0)); then
        for g in "${e2e_failure_logs[@]}"; do
            for f in "$tmp"/$g; do
                [[ -f "$f" ]] || continue
                printf -- '--- last lines of %s\n' "$(basename "$f")" >&2
                tail -n 30 "$f" >&2
            done
        done
    fi
    e2e_volume_down
    if [[ -n "${E2E_KEEP:-}" ]]; then
        echo "kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}

# e2e_init NAME: $tmp, the traps and the watchdog.
e2e_init() {
    tmp=$(mktemp -d "/tmp/baton-$1.XXXXXX") # local disk: sockets, logs, histories
    deadline=${E2E_DEADLINE:-${deadline:-240}}
    trap e2e_cleanup EXIT
    trap 'echo "interrupted" >&2; exit 130' INT
    trap 'echo "FAIL: deadline of ${deadline}s reached" >&2; exit 124' TERM
    # The watchdog must not keep CTest's output pipe open, nor leave a sleep behind.
    (
        exec >/dev/null 2>&1
        sleep "$deadline" &
        nap=$!
        trap 'kill "$nap"; exit 0' TERM
        wait "$nap" && kill -TERM $$
    ) &
    watchdog=$!
}

# e2e_volume_up N [EXTRA_UP_FLAGS...]: mounts[] = node1..nodeN.
e2e_volume_up() {
    local n=$1 t0=$SECONDS
    shift
    local -a extra=()
    if [[ "$E2E_FS" == gluster ]]; then
        # shellcheck disable=SC2206 # E2E_GLUSTER_OPTS: extra flags, e.g. --page-cache
        extra=(${E2E_GLUSTER_OPTS:-})
    else
        # shellcheck disable=SC2206 # E2E_CEPH_OPTS: extra flags, e.g. --session-timeout 30
        extra=(${E2E_CEPH_OPTS:-})
    fi
    log "bringing up a $(e2e_fs_name) volume with $n mounts"
    e2e_volume_is_up=1
    GLUSTER_LOCK_WAIT=${GLUSTER_LOCK_WAIT:-120} CEPH_LOCK_WAIT=${CEPH_LOCK_WAIT:-120} \
        "$e2e_volume_script" up "$tmp/vol" "$n" "${extra[@]}" "$@" >"$tmp/mounts" 2>"$tmp/volume-up.log" || {
        cat "$tmp/volume-up.log" >&2
        fail "could not bring up the $(e2e_fs_name) volume"
    }
    mapfile -t mounts <"$tmp/mounts"
    ((${#mounts[@]} == n)) || fail "expected $n mounts, got: ${mounts[*]}"
    log "volume up in $((SECONDS - t0))s: ${mounts[*]}"
}

e2e_volume_down() {
    if ((e2e_volume_is_up)); then
        "$e2e_volume_script" down "$tmp/vol" >/dev/null 2>&1
        e2e_volume_is_up=0
    fi
}

# e2e_fuse_pid NODE_INDEX: the pid of the FUSE client (glusterfs or
# ceph-fuse) that serves mounts[NODE_INDEX-1], for fault injection.
e2e_fuse_pid() {
    local mnt=${mounts[$1 - 1]} pid
    for pid in $(pgrep -x ceph-fuse) $(pgrep -x glusterfs); do
        if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$mnt"; then
            printf '%s\n' "$pid"
            return 0
        fi
    done
    return 1
}
