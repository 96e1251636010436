#!/usr/bin/env bash
# e2e.tokens_default_mount: fencing tokens on a GlusterFS volume mounted the
# way a plain user mounts it (scripts/gluster-volume.sh --client-defaults:
# the volume's performance translators on, no direct-io-mode, default FUSE
# attribute and entry caches), with kill -9 chaos.
#
#   tests/e2e/tokens_default_mount.sh BATOND BATON [TOKEN_COHERENCE]
#
#   1. brings up the volume with mounts node1 and node2 (client defaults);
#   2. with TOKEN_COHERENCE (tests/e2e/token_coherence.cpp): hands the token
#      record back and forth between the two mounts through LockFile's
#      O_DIRECT path, no clock involved, and requires no stale read; prints
#      the stale reads of the old read path (posix_fadvise + pread) next to it
#      as a figure;
#   3. starts one batond per mount: either batond refuses the mount (exit 1
#      with a reason, then the test passes: refusing is an allowed outcome) or
#      it serves it;
#   4. runs E2E_WORKERS (3) workers per node for E2E_CHAOS_SECONDS (20 s),
#      each repeating `baton run --lock fenced -- sh -c ...` whose command
#      appends "enter W TOKEN" / "exit W TOKEN" to a log on local disk, while
#      a chaos loop kill -9s a random node's batond every ~1.5 s and restarts
#      it;
#   5. checks that no token was granted twice, and that tokens strictly
#      increase in grant order: over the holds that ended normally (their
#      exit line comes before the next enter), enter order is grant order.
#
# Exit 77 (CTest SKIP_RETURN_CODE) without root, /dev/fuse or GlusterFS.
# Everything is torn down on any exit; an internal deadline (E2E_DEADLINE,
# 240 s) fires before CTest's timeout.
set -euo pipefail

E2E_FS=gluster
# shellcheck source=tests/e2e/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"

workers=${E2E_WORKERS:-3}
chaos_seconds=${E2E_CHAOS_SECONDS:-20}
coherence_rounds=${E2E_COHERENCE_ROUNDS:-200}

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: tokens_default_mount.sh BATOND BATON [TOKEN_COHERENCE]" >&2
    exit 64
fi
batond=$(realpath "$1")
baton=$(realpath "$2")
coherence=${3:+$(realpath "$3")}
[[ -x "$batond" ]] || fail "batond not executable: $1"
[[ -x "$baton" ]] || fail "baton not executable: $2"

e2e_require_fs
e2e_init e2e-tokens

# ------------------------------------------------------------------ volume
e2e_volume_up 2 --client-defaults

log "client mount options: $(grep -h " ${mounts[0]} " /proc/mounts | cut -d' ' -f3,4)"

# ------------------------------------------------- the record, no clock
if [[ -n "$coherence" ]]; then
    mkdir -p "${mounts[0]}/coherence"
    for mode in drop_cache direct; do
        rc=0
        "$coherence" "${mounts[0]}/coherence" "${mounts[1]}/coherence" "$coherence_rounds" "$mode" \
            >"$tmp/coherence-$mode.out" 2>"$tmp/coherence-$mode.err" || rc=$?
        ((rc <= 1)) || fail "token_coherence $mode: exit $rc: $(cat "$tmp/coherence-$mode.err")"
        log "token record handed between mounts, $mode: $(cat "$tmp/coherence-$mode.out")"
        if [[ "$mode" == direct ]] && ((rc != 0)); then
            fail "stale token records through O_DIRECT: $(cat "$tmp/coherence-$mode.out" "$tmp/coherence-$mode.err")"
        fi
    done
    rm -rf "${mounts[0]}/coherence"
fi

# ----------------------------------------------------------------- daemons
sock() { printf '%s/node%d/baton.sock' "$tmp" "$1"; }

# start_daemon I: 0 when it serves, 1 when it refused the mount.
start_daemon() {
    local i=$1 node="node$1" s k
    s=$(sock "$i")
    mkdir -p "$(dirname "$s")"
    "$batond" --root "${mounts[i - 1]}" --socket "$s" --pod-name "$node" --node-name "$node" \
        --log-level info --lock-check-interval 1 >>"$tmp/batond-$node.log" 2>&1 </dev/null &
    daemon_pid[$node]=$!
    for ((k = 0; k < 100; k++)); do
        if BATON_SOCKET=$s "$baton" ping >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "${daemon_pid[$node]}" 2>/dev/null; then
            unset "daemon_pid[$node]"
            return 1
        fi
        sleep 0.1
    done
    fail "batond on $node does not answer ping after 10 s"
}

if ! start_daemon 1; then
    grep -q "refusing root" "$tmp/batond-node1.log" ||
        fail "batond exited at start-up without refusing the mount: $(tail -n 5 "$tmp/batond-node1.log")"
    log "batond refuses the default-options mount: $(grep -m1 'refusing root' "$tmp/batond-node1.log")"
    log "PASS (refused)"
    exit 0
fi
start_daemon 2 || fail "batond on node2 refused a mount node1 accepted"
log "both batonds serve the default-options mount"

# ------------------------------------------------------------------- chaos
events="$tmp/events.log"
: >"$events"
stop_at=$((SECONDS + chaos_seconds))
for node in 1 2; do
    for ((w = 1; w <= workers; w++)); do
        (
            s=$(sock "$node")
            while ((SECONDS < stop_at)); do
                # shellcheck disable=SC2016 # expanded by sh -c
                BATON_SOCKET=$s W="n$node-w$w" EVENTS=$events "$baton" run --lock fenced -w 10 -- \
                    sh -c 'echo "enter $W $BATON_TOKEN" >>"$EVENTS"; sleep 0.02; echo "exit $W $BATON_TOKEN" >>"$EVENTS"' \
                    >/dev/null 2>&1 || sleep 0.1
            done
        ) &
        bg_pids+=($!)
    done
done
kills=0
while ((SECONDS < stop_at)); do
    sleep 1.$((RANDOM % 9))
    node=$((RANDOM % 2 + 1))
    pid=${daemon_pid[node$node]:-}
    [[ -n "$pid" ]] || continue
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "daemon_pid[node$node]"
    kills=$((kills + 1))
    start_daemon "$node" || fail "batond on node$node refused the mount after a restart"
done
for pid in "${bg_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
bg_pids=()

# ------------------------------------------------------------------- check
enters=$(grep -c '^enter ' "$events" || true)
((enters >= 10)) || fail "only $enters grants in ${chaos_seconds}s"
awk '
    function bad(why) { print "token check: " why; failed = 1 }
    $1 == "enter" {
        if (seen[$3]++) bad("token " $3 " granted twice (" $2 " and " owner[$3] ")")
        owner[$3] = $2
        # The previous hold ended normally before this grant: order is known.
        if (prev_done && $3 + 0 <= prev + 0)
            bad("token " $3 " of " $2 " after " prev " of " prev_w)
        prev = $3; prev_w = $2; prev_done = 0; n++
    }
    $1 == "exit" && $3 == prev { prev_done = 1 }
    END {
        if (!failed) printf "%d grants, tokens unique and increasing, first %s last %s\n", n, first, prev
        exit failed
    }
    $1 == "enter" && first == "" { first = $3 }
' "$events" >"$tmp/check.out" || fail "$(head -n 10 "$tmp/check.out")"
log "$kills kill -9 of a batond; $(cat "$tmp/check.out")"
log "PASS"
