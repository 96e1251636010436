#!/usr/bin/env bash
# gluster-volume.sh: a private one-brick GlusterFS volume mounted N times, so
# that one machine can stand in for N nodes sharing a ReadWriteMany volume.
# Locks (OFD, POSIX, flock) taken through one mount exclude those taken through
# another, as on NFSv4 or CephFS.
#
#   scripts/gluster-volume.sh up DIR N [--fast-failover] [--page-cache] [--stock-volume] [--client-defaults]
#       Starts a private glusterd whose state lives under DIR/.gluster, creates
#       and starts a one-brick volume, mounts it at DIR/node1 .. DIR/nodeN and
#       prints those mount points, one per line, on stdout (progress goes to
#       stderr). --fast-failover makes the brick notice a silently dead client
#       in ~5 s instead of ~42 s (server.tcp-user-timeout 5, short keepalives).
#       --page-cache keeps the kernel page cache of the FUSE mounts (see below).
#       --stock-volume leaves the volume's performance translators at
#       gluster's defaults (open-behind, md-cache, quick-read on): what a
#       user who only mounts with direct I/O gets.
#       --client-defaults leaves the volume's performance translators and the
#       mounts' options as a plain `mount -t glusterfs` gets them (caches on,
#       no direct-io-mode): what a user who mounts it plainly runs on.
#   scripts/gluster-volume.sh down DIR
#       Unmounts, stops and deletes the volume, stops glusterd and removes
#       everything `up` created. Safe to call twice, or after a failed `up`.
#
# Requires root, /dev/fuse and glusterfs-server (scripts/install-deps.sh
# --with-gluster). glusterd's management port 24007 is machine-wide (bricks
# always register on it), so only one such volume can be up at a time: `up`
# takes a machine-wide lock (a directory under /run/lock) and waits for it up to
# $GLUSTER_LOCK_WAIT seconds (default 600); `down` releases it. A lock whose
# owner's glusterd is dead is taken over.
#
# Client-side caches (write-behind with flush-behind, io-cache, md-cache, ...)
# are turned off, the FUSE attribute/entry caches set to 0 and the mounts use
# direct-io-mode=enable, so that what one mount wrote under a lock is what the
# next lock holder on another mount reads, as on NFS (whose client revalidates
# its cache when it takes a lock) or CephFS. Without direct I/O a FUSE mount
# keeps serving stale pages to a descriptor opened earlier, and even to a new
# open, after another mount rewrote the file in place (same size): found by
# trying, gluster 10.3. --page-cache keeps that behaviour, to test software
# that must cope with it (posix_fadvise(POSIX_FADV_DONTNEED) before a pread
# does fetch the fresh data).
set -euo pipefail

readonly GLUSTERD_PORT=24007
readonly LOCK_DIR=/run/lock/baton-gluster-volume

log() { printf 'gluster-volume: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: gluster-volume.sh up DIR N [--fast-failover] [--page-cache] [--stock-volume] [--client-defaults]
       gluster-volume.sh down DIR
EOF
    exit 64
}

# The gluster CLI, talking to our glusterd only.
gcli() { gluster --mode=script --glusterd-sock="$STATE/glusterd.socket" "$@"; }

port_in_use() { ss -Hltn "sport = :$GLUSTERD_PORT" 2>/dev/null | grep -q .; }

# Alive and not a zombie.
pid_alive() {
    local st
    [[ -n "${1:-}" ]] && st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n "$st" && "$st" != Z ]]
}

take_lock() {
    local wait_s=${GLUSTER_LOCK_WAIT:-600} waited=0 owner owner_pid age
    mkdir -p "$(dirname "$LOCK_DIR")"
    until mkdir "$LOCK_DIR" 2>/dev/null; do
        owner=$(cat "$LOCK_DIR/owner" 2>/dev/null || true)
        owner_pid=$(cat "$owner/.gluster/glusterd.pid" 2>/dev/null || true)
        age=$(($(date +%s) - $(stat -c %Y "$LOCK_DIR" 2>/dev/null || date +%s)))
        # Stale: the owner's glusterd died, or its state vanished long ago.
        if { [[ -n "$owner_pid" ]] && ! pid_alive "$owner_pid"; } ||
           { [[ ! -d "$owner/.gluster" ]] && ((age > 120)); }; then
            log "taking over the stale lock of ${owner:-?}"
            rm -rf "$LOCK_DIR"
            continue
        fi
        if ((waited == 0)); then log "waiting for the volume of ${owner:-another user} to go down"; fi
        if ((waited >= wait_s)); then die "another private gluster volume (${owner:-?}) is still up after ${wait_s}s; if it is a leftover: $0 down ${owner:-DIR}"; fi
        sleep 1
        waited=$((waited + 1))
    done
    printf '%s\n' "$DIR" >"$LOCK_DIR/owner"
}

release_lock() {
    if [[ -d "$LOCK_DIR" && "$(cat "$LOCK_DIR/owner" 2>/dev/null || true)" == "$DIR" ]]; then
        rm -rf "$LOCK_DIR"
    fi
}

up_failed() {
    local rc=$?
    if ((rc != 0)); then
        log "up failed (exit $rc); tearing down"
        cmd_down || true
    fi
    return "$rc"
}

cmd_up() {
    local n=$1 fast=$2 page_cache=$3 defaults=$4 stock=${5:-0} host vol i mnt t0 mount_opts
    t0=$(date +%s.%N)
    [[ $EUID -eq 0 ]] || die "must run as root (glusterd and FUSE mounts)"
    [[ -c /dev/fuse ]] || die "/dev/fuse is missing"
    command -v glusterd >/dev/null || die "glusterd not found: run scripts/install-deps.sh --with-gluster"
    command -v mount.glusterfs >/dev/null || die "mount.glusterfs not found: install glusterfs-client"
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$n'"
    [[ ! -e "$STATE" ]] || die "$STATE exists: run 'gluster-volume.sh down $DIR' first"

    take_lock
    # From here on, a failure undoes what was done.
    trap 'up_failed' EXIT
    if port_in_use; then
        die "port $GLUSTERD_PORT is taken (a system glusterd?): stop it first"
    fi

    host=$(hostname -I 2>/dev/null | awk '{print $1}')
    [[ -n "$host" ]] || die "no non-loopback address (hostname -I is empty): glusterd refuses loopback bricks"
    vol="baton$$"
    mkdir -p "$STATE/wd" "$STATE/brick"
    printf '%s\n' "$host" >"$STATE/host"
    printf '%s\n' "$vol" >"$STATE/volume"

    sed -e "s#^\([[:space:]]*option working-directory\).*#\1 $STATE/wd\n    option glusterd-sockfile $STATE/glusterd.socket#" \
        /etc/glusterfs/glusterd.vol >"$STATE/glusterd.vol"
    grep -q "working-directory $STATE/wd" "$STATE/glusterd.vol" || die "could not edit glusterd.vol"

    log "starting glusterd (state in $STATE)"
    glusterd -f "$STATE/glusterd.vol" -p "$STATE/glusterd.pid" -l "$STATE/glusterd.log" \
        </dev/null >>"$STATE/glusterd.out" 2>&1
    for ((i = 0; i < 100; i++)); do
        if gcli volume list >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
    gcli volume list >/dev/null 2>&1 || die "glusterd did not come up; see $STATE/glusterd.log"

    log "creating volume $vol on $host:$STATE/brick"
    gcli volume create "$vol" "$host:$STATE/brick" force >&2
    local -a opts=()
    if [[ "$defaults" == 0 && "$stock" == 0 ]]; then opts+=(
        performance.write-behind off performance.flush-behind off
        performance.io-cache off performance.read-ahead off
        performance.quick-read off performance.stat-prefetch off
        performance.open-behind off performance.readdir-ahead off
        performance.nl-cache off
    ); fi
    if [[ "$fast" == 1 ]]; then
        opts+=(server.tcp-user-timeout 5 server.keepalive-time 2
               server.keepalive-interval 1 server.keepalive-count 3
               network.ping-timeout 5)
    fi
    for ((i = 0; i < ${#opts[@]}; i += 2)); do
        gcli volume set "$vol" "${opts[i]}" "${opts[i + 1]}" >/dev/null
    done
    gcli volume start "$vol" >&2

    mount_opts="attribute-timeout=0,entry-timeout=0,negative-timeout=0"
    if [[ "$page_cache" == 0 ]]; then mount_opts+=",direct-io-mode=enable"; fi
    if [[ "$defaults" == 1 ]]; then mount_opts=""; fi
    for ((i = 1; i <= n; i++)); do
        mnt="$DIR/node$i"
        mkdir -p "$mnt"
        mount -t glusterfs -o "log-file=$STATE/client-node$i.log${mount_opts:+,$mount_opts}" "$host:/$vol" "$mnt"
    done
    # The brick may take a moment to accept clients: wait until every mount works.
    for ((i = 1; i <= n; i++)); do
        mnt="$DIR/node$i"
        local ok=0 k
        for ((k = 0; k < 100; k++)); do
            if mountpoint -q "$mnt" && touch "$mnt/.gluster-volume-probe" 2>/dev/null; then ok=1; break; fi
            sleep 0.1
        done
        ((ok)) || die "mount $mnt does not work; see $STATE/client-node$i.log"
    done
    rm -f "$DIR/node1/.gluster-volume-probe"
    trap - EXIT
    log "up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: volume $vol, $n mounts"
    for ((i = 1; i <= n; i++)); do printf '%s\n' "$DIR/node$i"; done
}

cmd_down() {
    local vol="" mnt pid sock t0
    t0=$(date +%s.%N)
    vol=$(cat "$STATE/volume" 2>/dev/null || true)

    # 1. Unmount every node (each unmount ends that node's FUSE client).
    for mnt in "$DIR"/node*; do
        [[ -d "$mnt" ]] || continue
        if mountpoint -q "$mnt" || grep -qs " $mnt fuse" /proc/mounts; then
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "cannot unmount $mnt"
        fi
        rmdir "$mnt" 2>/dev/null || true
    done

    # 2. Stop and delete the volume; remember the brick's socket and pid first.
    local -a brick_pids=() brick_socks=()
    if [[ -n "$vol" ]]; then
        local pidfile
        for pidfile in /var/run/gluster/vols/"$vol"/*.pid; do
            [[ -f "$pidfile" ]] || continue
            pid=$(<"$pidfile")
            if pid_alive "$pid"; then
                brick_pids+=("$pid")
                sock=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | awk 'p{print; exit} $0=="-S"{p=1}')
                if [[ -n "$sock" ]]; then brick_socks+=("$sock"); fi
            fi
        done
        if [[ -S "$STATE/glusterd.socket" ]]; then
            gcli volume stop "$vol" force >/dev/null 2>&1 || true
            gcli volume delete "$vol" >/dev/null 2>&1 || true
        fi
    fi

    # 3. Stop glusterd, then any brick process it left behind.
    pid=$(cat "$STATE/glusterd.pid" 2>/dev/null || true)
    if pid_alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    for pid in "${brick_pids[@]}"; do
        if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    done

    # 4. Remove the state, and what gluster wrote outside it.
    if [[ -n "$vol" ]]; then
        rm -rf "/var/run/gluster/vols/$vol"
        rm -f "${brick_socks[@]}"
        rm -f "/var/log/glusterfs/bricks/$(printf '%s' "${STATE#/}/brick" | tr '/' '-').log"
    fi
    rm -rf "$STATE"
    release_lock
    log "down in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
}

[[ $# -ge 2 ]] || usage
action=$1
DIR=$2
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
STATE="$DIR/.gluster"

case "$action" in
up)
    [[ $# -ge 3 ]] || usage
    fast=0
    page_cache=0
    defaults=0
    stock=0
    for opt in "${@:4}"; do
        case "$opt" in
        --fast-failover) fast=1 ;;
        --page-cache) page_cache=1 ;;
        --client-defaults) defaults=1 ;;
        --stock-volume) stock=1 ;;
        *) usage ;;
        esac
    done
    cmd_up "$3" "$fast" "$page_cache" "$defaults" "$stock"
    ;;
down)
    [[ $# -eq 2 ]] || usage
    cmd_down
    ;;
*) usage ;;
esac
