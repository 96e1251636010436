#!/usr/bin/env bash
# ceph-volume.sh: a private single-node CephFS (one mon, one memstore OSD, one
# MDS) mounted N times with ceph-fuse, so that one machine can stand in for N
# nodes sharing a ReadWriteMany CephFS volume. Locks (OFD, POSIX, flock) taken
# through one mount exclude those taken through another (the MDS arbitrates).
#
#   scripts/ceph-volume.sh up DIR N [--session-timeout S] [--autoclose S]
#       Writes DIR/.ceph/ceph.conf and every key, starts ceph-mon, ceph-osd
#       (memstore: the data lives in RAM and goes with the OSD) and ceph-mds,
#       creates the file system, gives each node its own client key
#       (client.node1 ..) and mounts it with ceph-fuse at DIR/node1 ..
#       DIR/nodeN. Prints those mount points, one per line, on stdout
#       (progress goes to stderr). --session-timeout sets the file system's
#       session_timeout (Ceph's default 60 s, at least 30): after it, a client
#       that stopped renewing is marked stale. --autoclose sets
#       session_autoclose (Ceph's default 300 s, at least 30): after it, such a
#       client is evicted and blocklisted, and only then do its locks go (a
#       dead ceph-fuse's OFD, POSIX and flock locks are held until then;
#       measured: 31 s after a kill -9 with 30/30, 171-261 s with the
#       default autoclose, which counts from the client's last renewal).
#   scripts/ceph-volume.sh down DIR
#       Unmounts (fusermount -uz, also a dead mount), stops the daemons (TERM,
#       then KILL after a short grace) and removes everything `up` created.
#       Safe to call twice, or after a failed `up`.
#   scripts/ceph-volume.sh evict DIR NODE
#       Evicts NODE's (node1 ..) client session at the MDS, as an operator does
#       for a dead node: its locks go at once.
#   scripts/ceph-volume.sh ceph DIR ARGS...
#       Runs `ceph ARGS...` against this cluster (client.admin).
#
# Everything lives under DIR/.ceph and every command is given -c
# DIR/.ceph/ceph.conf: nothing goes to /etc/ceph or /var/lib/ceph. No
# ceph-mgr (it would add ~300 MB RSS): pools are created by the mon, the PG
# autoscaler is off.
#
# Requires root, /dev/fuse and ceph-mon, ceph-osd, ceph-mds, ceph-fuse,
# ceph-common (scripts/install-deps.sh --with-ceph). The mon listens on
# 127.0.0.1:$CEPH_MON_PORT (msgr2, default 3300) and 127.0.0.1:$CEPH_MON_PORT_V1
# (default 6789), which are machine-wide, so only one such cluster can be up
# at a time: `up` takes a machine-wide lock (a directory under /run/lock) and
# waits for it up to $CEPH_LOCK_WAIT seconds (default 600); `down` releases
# it. A lock whose owner's ceph-mon is dead is taken over.
set -euo pipefail

readonly LOCK_DIR=/run/lock/baton-ceph-volume
readonly FS=cephfs
MON_PORT=${CEPH_MON_PORT:-3300}
MON_PORT_V1=${CEPH_MON_PORT_V1:-6789}

log() { printf 'ceph-volume: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: ceph-volume.sh up DIR N [--session-timeout S] [--autoclose S]
       ceph-volume.sh down DIR
       ceph-volume.sh evict DIR NODE
       ceph-volume.sh ceph DIR ARGS...
EOF
    exit 64
}

# The ceph CLI, talking to our mon only, as client.admin.
ccli() { timeout 60 ceph -c "$STATE/ceph.conf" --connect-timeout 20 "$@"; }

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# Alive and not a zombie.
pid_alive() {
    local st
    [[ -n "${1:-}" ]] && st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n "$st" && "$st" != Z ]]
}

take_lock() {
    local wait_s=${CEPH_LOCK_WAIT:-600} waited=0 owner owner_pid age
    mkdir -p "$(dirname "$LOCK_DIR")"
    until mkdir "$LOCK_DIR" 2>/dev/null; do
        owner=$(cat "$LOCK_DIR/owner" 2>/dev/null || true)
        owner_pid=$(cat "$owner/.ceph/run/mon.a.pid" 2>/dev/null || true)
        age=$(($(date +%s) - $(stat -c %Y "$LOCK_DIR" 2>/dev/null || date +%s)))
        # Stale: the owner's mon died, or its state vanished long ago.
        if { [[ -n "$owner_pid" ]] && ! pid_alive "$owner_pid"; } ||
           { [[ ! -d "$owner/.ceph" ]] && ((age > 120)); }; then
            log "taking over the stale lock of ${owner:-?}"
            rm -rf "$LOCK_DIR"
            continue
        fi
        if ((waited == 0)); then log "waiting for the cluster of ${owner:-another user} to go down"; fi
        if ((waited >= wait_s)); then die "another private ceph cluster (${owner:-?}) is still up after ${wait_s}s; if it is a leftover: $0 down ${owner:-DIR}"; fi
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
        log "up failed (exit $rc); tearing down (logs were in $STATE/log)"
        if [[ -d "$STATE/log" ]]; then tail -n 5 "$STATE"/log/*.log >&2 2>/dev/null || true; fi
        cmd_down || true
    fi
    return "$rc"
}

# wait_for SECONDS WHAT CMD...: polls CMD every 0.2 s.
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "$what not within ${secs}s; see $STATE/log"
}

mds_active() { ccli mds stat 2>/dev/null | grep -q 'up:active'; }
osd_up() { ccli osd stat 2>/dev/null | grep -Eq '1 up.*1 in'; }

cmd_up() {
    local n=$1 session_timeout=$2 autoclose=$3 i mnt t0 fsid osd_uuid k
    t0=$(date +%s.%N)
    [[ $EUID -eq 0 ]] || die "must run as root (ceph daemons and FUSE mounts)"
    [[ -c /dev/fuse ]] || die "/dev/fuse is missing"
    for k in ceph-mon ceph-osd ceph-mds ceph-fuse ceph ceph-authtool monmaptool; do
        command -v "$k" >/dev/null || die "$k not found: run scripts/install-deps.sh --with-ceph"
    done
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$n'"
    [[ ! -e "$STATE" ]] || die "$STATE exists: run 'ceph-volume.sh down $DIR' first"

    take_lock
    # From here on, a failure undoes what was done.
    trap 'up_failed' EXIT
    for k in "$MON_PORT" "$MON_PORT_V1"; do
        if port_in_use "$k"; then die "port $k is taken (another ceph-mon?): stop it first"; fi
    done

    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    mkdir -p "$STATE"/{run,log,mon/ceph-a,osd/ceph-0,mds/ceph-a}
    cat >"$STATE/ceph.conf" <<EOF
[global]
fsid = $fsid
mon initial members = a
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $STATE/keyring
run dir = $STATE/run
admin socket = $STATE/run/\$name.asok
pid file = $STATE/run/\$name.pid
log file = $STATE/log/\$name.log
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
[mon]
mon data = $STATE/mon/\$cluster-\$id
[osd]
osd data = $STATE/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
[mds]
mds data = $STATE/mds/\$cluster-\$id
[client]
log file = $STATE/log/\$name.log
EOF

    log "keys and monmap (state in $STATE)"
    local kr="$STATE/keyring"
    ceph-authtool --create-keyring "$kr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$kr" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
        --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$kr" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' \
        --cap mgr 'allow profile osd' >/dev/null
    ceph-authtool "$kr" --gen-key -n mds.a --cap mon 'allow profile mds' --cap osd 'allow *' \
        --cap mds 'allow' --cap mgr 'allow profile mds' >/dev/null
    for ((i = 1; i <= n; i++)); do
        ceph-authtool "$kr" --gen-key -n "client.node$i" --cap mon 'allow r' --cap mds 'allow rw' \
            --cap osd "allow rw tag cephfs data=$FS" >/dev/null
    done
    chmod 600 "$kr"
    monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]" \
        --fsid "$fsid" "$STATE/monmap" >/dev/null

    log "starting ceph-mon"
    ceph-mon -c "$STATE/ceph.conf" --mkfs -i a --monmap "$STATE/monmap" --keyring "$kr" >/dev/null
    ceph-mon -c "$STATE/ceph.conf" -i a
    wait_for 30 "ceph-mon did not answer" ccli mon stat

    log "starting ceph-osd (memstore)"
    ccli osd new "$osd_uuid" 0 >/dev/null
    ceph-osd -c "$STATE/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1 ||
        die "ceph-osd --mkfs failed; see $STATE/log/osd.0.log"
    ceph-osd -c "$STATE/ceph.conf" -i 0
    wait_for 60 "the OSD was not up" osd_up

    log "creating file system $FS"
    ccli osd pool create "${FS}_meta" 8 8 >/dev/null 2>&1
    ccli osd pool create "${FS}_data" 8 8 >/dev/null 2>&1
    for k in "${FS}_meta" "${FS}_data"; do
        ccli osd pool set "$k" size 1 --yes-i-really-mean-it >/dev/null 2>&1
    done
    ccli fs new "$FS" "${FS}_meta" "${FS}_data" >/dev/null 2>&1
    if [[ -n "$session_timeout" ]]; then
        ccli fs set "$FS" session_timeout "$session_timeout" >/dev/null
    fi
    if [[ -n "$autoclose" ]]; then
        ccli fs set "$FS" session_autoclose "$autoclose" >/dev/null
    fi

    log "starting ceph-mds"
    ceph-mds -c "$STATE/ceph.conf" -i a >/dev/null
    wait_for 60 "the MDS was not active" mds_active

    for ((i = 1; i <= n; i++)); do
        mnt="$DIR/node$i"
        mkdir -p "$mnt"
        ceph-fuse -c "$STATE/ceph.conf" --id "node$i" "$mnt" >"$STATE/log/ceph-fuse-node$i.out" 2>&1 ||
            die "ceph-fuse for node$i failed: $(tail -n 3 "$STATE/log/ceph-fuse-node$i.out")"
    done
    for ((i = 1; i <= n; i++)); do
        mnt="$DIR/node$i"
        wait_for 30 "mount $mnt did not work" touch "$mnt/.ceph-volume-probe"
    done
    rm -f "$DIR/node1/.ceph-volume-probe"
    trap - EXIT
    log "up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: CephFS $FS, $n ceph-fuse mounts" \
        "($(ccli fs get "$FS" 2>/dev/null | awk '$1 ~ /^session_(timeout|autoclose)$/ {printf "%s%s %s s", sep, $1, $2; sep = ", "}'))"
    for ((i = 1; i <= n; i++)); do printf '%s\n' "$DIR/node$i"; done
}

# The pid of the ceph-fuse process that serves MOUNT (empty if none).
fuse_pid_of() {
    local mnt=$1 pid
    for pid in $(pgrep -x ceph-fuse 2>/dev/null); do
        if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$mnt"; then
            printf '%s\n' "$pid"
            return 0
        fi
    done
}

stop_daemon() { # pidfile: TERM, 3 s grace, KILL
    local pid i
    pid=$(cat "$1" 2>/dev/null || true)
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do pid_alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do pid_alive "$pid" || return 0; sleep 0.1; done
}

cmd_down() {
    local mnt pid t0 i
    t0=$(date +%s.%N)
    # 1. Unmount every node, live or dead (a dead mount fails stat with
    #    ENOTCONN: find it in /proc/mounts), and end its ceph-fuse.
    local -a fuse_pids=()
    while read -r _ mnt _; do
        [[ "$mnt" == "$DIR"/node* ]] || continue
        pid=$(fuse_pid_of "$mnt")
        if [[ -n "$pid" ]]; then fuse_pids+=("$pid"); fi
        fusermount -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "cannot unmount $mnt"
    done < <(awk '{print $1, $2, $3}' /proc/mounts)
    for pid in "${fuse_pids[@]}"; do
        for ((i = 0; i < 30; i++)); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    for mnt in "$DIR"/node*; do rmdir "$mnt" 2>/dev/null || true; done

    # 2. The daemons: MDS, OSD, then the mon (MDS and OSD ignore TERM for
    #    seconds: KILL after a short grace).
    if [[ -d "$STATE/run" ]]; then
        stop_daemon "$STATE/run/mds.a.pid"
        stop_daemon "$STATE/run/osd.0.pid"
        stop_daemon "$STATE/run/mon.a.pid"
    fi
    # Any of ours still there (a pid file removed on a slow shutdown, a
    # respawned MDS: seen once, an MDS outliving its test): by its -c path.
    for pid in $(pgrep -f -- "-c $STATE/ceph.conf" 2>/dev/null); do
        kill -9 "$pid" 2>/dev/null || true
    done

    # 3. The state (the memstore OSD's data was in RAM).
    rm -rf "$STATE"
    release_lock
    log "down in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
}

cmd_evict() {
    local node=$1 id
    [[ -f "$STATE/ceph.conf" ]] || die "no cluster under $DIR"
    id=$(ccli tell mds.a client ls 2>/dev/null |
        python3 -c 'import json,sys
for s in json.load(sys.stdin):
    if s.get("entity", {}).get("name", {}).get("num") is not None and "client_metadata" in s and s["client_metadata"].get("entity_id") == sys.argv[1]:
        print(s["id"])' "$node")
    [[ -n "$id" ]] || die "no session of client.$node at the MDS"
    ccli tell mds.a client evict "id=$id" >/dev/null 2>&1
    log "evicted client.$node (session $id)"
}

[[ $# -ge 2 ]] || usage
action=$1
DIR=$2
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
STATE="$DIR/.ceph"

case "$action" in
up)
    [[ $# -ge 3 ]] || usage
    st=""
    ac=""
    n=$3
    set -- "${@:4}"
    while (($#)); do
        case "$1" in
        --session-timeout)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
            st=$2
            shift 2
            ;;
        --autoclose)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
            ac=$2
            shift 2
            ;;
        *) usage ;;
        esac
    done
    cmd_up "$n" "$st" "$ac"
    ;;
down)
    [[ $# -eq 2 ]] || usage
    cmd_down
    ;;
evict)
    [[ $# -eq 3 ]] || usage
    cmd_evict "$3"
    ;;
ceph)
    [[ -f "$STATE/ceph.conf" ]] || die "no cluster under $DIR"
    shift 2
    ccli "$@"
    ;;
*) usage ;;
esac
