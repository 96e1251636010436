#!/usr/bin/env bash
# e2e.cross_node_locks, e2e.cephfs_locks: baton's lock service across
# E2E_NODES (2) "nodes" that share a real network filesystem: E2E_FS=gluster
# (a one-brick GlusterFS volume mounted N times, scripts/gluster-volume.sh) or
# E2E_FS=ceph (a single-node CephFS with N ceph-fuse mounts,
# scripts/ceph-volume.sh); see e2e_lib.sh.
#
#   tests/e2e/cross_node_locks.sh BATOND BATON
#   tests/e2e/cross_node_locks.sh --self-test
#
# With real binaries it:
#   1. brings up the volume with mounts node1 and node2, and one batond per
#      mount (--root = the mount, pod and node names node1/node2, sockets in a
#      local temp dir);
#   2. runs E2E_WORKERS (4) workers per node, each doing E2E_ITERS (10) rounds
#      of `baton run --lock shared-counter -- sh -c ...`; the command appends
#      "enter W TOKEN" / "exit W TOKEN" to a log on LOCAL disk (O_APPEND) and
#      read-modify-writes a counter file ON the volume (read, sleep, write +1);
#   3. checks that enters and exits strictly alternate (never two exclusive
#      holders at once), that fencing tokens strictly increase in enter order,
#      and that the counter equals the number of rounds;
#   3b. with E2E_CHAOS_ROUNDS > 0: the chaos phase (below, where it runs);
#   4. holds a lock through node1, makes node2 wait for it, checks that node2's
#      status shows node1 as the holder, kill -9s node1's batond and checks
#      that node2 gets the lock promptly (under E2E_TAKEOVER_MAX, 10 s), that
#      node1's `baton run` stops its command and exits 74 (lock lost), and that
#      a restarted batond on node1 issues a still larger token;
#   5. stops both daemons with SIGTERM: each must exit 0 within 5 s.
# --self-test runs steps 2-3 with a flock(1)-based stand-in for baton (no
# binaries needed), then a negative control without any lock that the checker
# must reject: it tests the harness and the checker themselves.
#
# E2E_GLUSTER_OPTS adds flags to `gluster-volume.sh up` (--page-cache: keep the
# FUSE page cache, which serves stale data across mounts; see that script).
#
# Exit 77 (CTest SKIP_RETURN_CODE) when the file system's packages are not
# installed, not root, or /dev/fuse is missing. Everything is torn down on any
# exit, and an internal deadline (E2E_DEADLINE, 240 s) fires before CTest's timeout would SIGKILL us
# and leave mounts behind.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=tests/e2e/e2e_lib.sh
source "$here/e2e_lib.sh"

nodes=${E2E_NODES:-2}
workers=${E2E_WORKERS:-4}
iters=${E2E_ITERS:-10}
takeover_max=${E2E_TAKEOVER_MAX:-10}
chaos_rounds=${E2E_CHAOS_ROUNDS:-0}

self_test=0
if [[ "${1:-}" == --self-test ]]; then
    self_test=1
elif [[ $# -ne 2 ]]; then
    echo "usage: cross_node_locks.sh BATOND BATON | --self-test" >&2
    exit 64
else
    batond=$(realpath "$1")
    baton=$(realpath "$2")
    [[ -x "$batond" ]] || fail "batond not executable: $1"
    [[ -x "$baton" ]] || fail "baton not executable: $2"
fi

e2e_require_fs
[[ "$nodes" =~ ^[2-9]$ ]] || fail "E2E_NODES must be 2..9, not $nodes"

# ---------------------------------------------------------------- teardown
holder_cmd=""
# The kill-test command, should baton run have failed to stop it.
e2e_on_cleanup() {
    if [[ -n "$holder_cmd" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$holder_cmd/cmdline" | grep -q '^sleep 300'; then
        kill -KILL "$holder_cmd"
    fi
}
e2e_init e2e

# ------------------------------------------------------------------ volume
e2e_volume_up "$nodes"

# ----------------------------------------------------------------- daemons
# start_daemon NODE_INDEX: batond on mount node$i, socket $tmp/node$i/baton.sock
sock() { printf '%s/node%d/baton.sock' "$tmp" "$1"; }

start_daemon() {
    local i=$1 node="node$1" s k
    s=$(sock "$i")
    mkdir -p "$(dirname "$s")"
    "$batond" --root "${mounts[i - 1]}" --socket "$s" --pod-name "$node" --node-name "$node" \
        --log-level debug --lock-check-interval 1 >>"$tmp/batond-$node.log" 2>&1 </dev/null &
    daemon_pid[$node]=$!
    for ((k = 0; k < 100; k++)); do
        if BATON_SOCKET=$s "$baton" ping >/dev/null 2>&1; then return 0; fi
        kill -0 "${daemon_pid[$node]}" 2>/dev/null || fail "batond on $node exited at start-up"
        sleep 0.1
    done
    fail "batond on $node does not answer ping after 10 s"
}

if ((self_test)); then
    # A flock(1)-based stand-in: "batond" records its root in the socket path;
    # "baton run --lock N -- CMD" takes flock on ROOT/.locks/N and hands CMD a
    # token from ROOT/.locks/N.token, incremented under the lock.
    mkdir -p "$tmp/shim"
    cat >"$tmp/shim/batond" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
while (($#)); do case "$1" in --root) root=$2; shift 2;; --socket) sock=$2; shift 2;; *) shift;; esac; done
printf '%s\n' "$root" >"$sock"
exec sleep infinity
EOF
    cat >"$tmp/shim/baton" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
root=$(cat "$BATON_SOCKET")
[[ "$1" == ping ]] && exit 0
[[ "$1" == run && "$2" == --lock && "$4" == -- ]] || exit 64
name=$3; shift 4
mkdir -p "$root/.locks"
exec 8>>"$root/.locks/$name"
flock 8
t=$(( $(cat "$root/.locks/$name.token" 2>/dev/null || echo 0) + 1 ))
echo "$t" >"$root/.locks/$name.token"
BATON_LOCK=$name BATON_TOKEN=$t "$@" 8>&-
EOF
    chmod +x "$tmp/shim/batond" "$tmp/shim/baton"
    batond="$tmp/shim/batond"
    baton="$tmp/shim/baton"
fi

t0=$SECONDS
for ((i = 1; i <= nodes; i++)); do start_daemon "$i"; done
log "batond up on $nodes nodes in $((SECONDS - t0))s"

# ---------------------------------------------------------- counter phase
events="$tmp/events.log" # local disk, appended with O_APPEND
: >"$events"
printf '0\n' >"${mounts[0]}/counter"

# The command run under the lock. Its environment: W, EVENTS, COUNTER, NAP.
# shellcheck disable=SC2016 # expanded by sh -c, not here
critical='echo "enter $W $BATON_TOKEN" >>"$EVENTS"
n=$(cat "$COUNTER") || exit 90
sleep "$NAP"
echo $((n + 1)) >"$COUNTER.$W" && mv -f "$COUNTER.$W" "$COUNTER" || exit 91
echo "exit $W $BATON_TOKEN" >>"$EVENTS"'

# worker NODE_INDEX ID [nolock]
worker() {
    local i=$1 w="node$1.w$2" mode=${3:-lock} k rc
    local mnt=${mounts[i - 1]}
    for ((k = 1; k <= iters; k++)); do
        rc=0
        if [[ "$mode" == nolock ]]; then
            W=$w EVENTS=$events COUNTER="$mnt/counter" NAP="0.0$((RANDOM % 5 + 1))" BATON_TOKEN=0 \
                sh -c "$critical" || rc=$?
        else
            W=$w EVENTS=$events COUNTER="$mnt/counter" NAP="0.0$((RANDOM % 5 + 1))" \
                BATON_SOCKET=$(sock "$i") "$baton" run --lock shared-counter -- sh -c "$critical" || rc=$?
        fi
        if ((rc != 0)); then
            echo "$w round $k: exit $rc" >>"$tmp/worker-errors"
        fi
    done
}

# check TOTAL: the event log and the counter; prints problems, returns 1 on any
check() {
    local total=$1 counter
    counter=$(cat "${mounts[1]}/counter" 2>/dev/null || echo '?')
    awk -v total="$total" -v counter="$counter" '
        function bad(msg) { problems++; if (problems <= 10) print "  line " NR ": " msg }
        NF != 3 || ($1 != "enter" && $1 != "exit") { bad("malformed: " $0); next }
        $3 !~ /^[0-9]+$/ { bad("token is not an integer: " $0); next }
        $1 == "enter" {
            enters++
            if (holder != "") bad($2 " entered while " holder " (token " htok ") was inside")
            if (enters > 1 && $3 + 0 <= last + 0) bad("token " $3 " of " $2 " does not exceed the previous " last)
            holder = $2; htok = $3; last = $3
            next
        }
        {
            exits++
            if (holder != $2) bad($2 " exited but the holder was \"" holder "\"")
            else if (htok != $3) bad($2 " exited with token " $3 " but entered with " htok)
            holder = ""
        }
        END {
            if (holder != "") bad(holder " never exited")
            if (enters != total) bad("enters: " enters + 0 ", expected " total)
            if (exits != total) bad("exits: " exits + 0 ", expected " total)
            if (counter != total) bad("counter on the volume: " counter ", expected " total)
            if (problems > 10) print "  ... " problems - 10 " more"
            exit problems > 0
        }' "$events"
}

run_workers() { # [nolock]
    local i j pids=()
    for ((i = 1; i <= nodes; i++)); do
        for ((j = 1; j <= workers; j++)); do
            worker "$i" "$j" "$@" &
            pids+=($!)
        done
    done
    bg_pids+=("${pids[@]}")
    wait "${pids[@]}"
}

total=$((nodes * workers * iters))
log "counter phase: $nodes nodes x $workers workers x $iters rounds = $total critical sections"
t0=$EPOCHREALTIME
run_workers
elapsed=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
if [[ -s "$tmp/worker-errors" ]]; then
    head -n 20 "$tmp/worker-errors" >&2
    fail "some baton run calls failed (above)"
fi
if ! problems=$(check "$total"); then
    printf '%s\n' "$problems" >&2
    fail "the lock did not serialise the critical sections (above)"
fi
first=$(awk 'NR == 1 { print $3 }' "$events")
last=$(awk 'END { print $3 }' "$events")
per_node=""
for ((i = 1; i <= nodes; i++)); do per_node+=" node$i ran $(grep -c "^enter node$i\." "$events" || true);"; done
log "counter phase OK in ${elapsed}s on $(e2e_fs_name): $total strictly alternating enter/exit pairs," \
    "tokens $first..$last strictly increasing, counter = $total, 0 violations;${per_node%;}"

if ((self_test)); then
    log "negative control: the same workload without any lock must be caught"
    : >"$events"
    printf '0\n' >"${mounts[0]}/counter"
    rm -f "$tmp/worker-errors"
    run_workers nolock
    if problems=$(check "$total"); then
        fail "the checker accepted an unlocked run: it cannot see overlaps"
    fi
    printf '%s\n' "$problems" | head -n 4
    log "negative control OK: the checker rejects an unlocked run"
    log "self-test passed"
    exit 0
fi

# ----------------------------------------------------------- chaos phase
# E2E_CHAOS_ROUNDS kill -9s while every node's workers take 'chaos' in turn:
# in rotation the holder's command, the holder's `baton run` (the wrapper)
# and the holder node's batond (restarted at once). Checked: no enter while
# another holder lives (a holder whose command, wrapper or daemon was killed
# is dead or lost its lock), tokens strictly increase in enter order across
# every kill and restart, only the holder of a killed daemon may still write
# its exit line late (the window the fencing token exists for: its publish
# would be refused), and the counter (replaced by rename, so that a kill
# leaves the old or the new value) lies between the exits and the enters.
if ((chaos_rounds > 0)); then
    cevents="$tmp/chaos-events"
    killed="$tmp/chaos-killed"
    cur="$tmp/chaos-current"
    : >"$cevents"
    : >"$killed"
    rm -f "$tmp/chaos-stop" "$cur"
    printf '0\n' >"${mounts[0]}/chaos-counter"
    # shellcheck disable=SC2016 # expanded by sh -c
    chaos_critical='echo "enter $W $BATON_TOKEN" >>"$EVENTS"
echo "$W $BATON_TOKEN $$ $PPID" >"$CUR.$$" && mv "$CUR.$$" "$CUR"
n=$(cat "$COUNTER") || exit 90
sleep "$NAP"
echo $((n + 1)) >"$COUNTER.$W" && mv -f "$COUNTER.$W" "$COUNTER" || exit 91
echo "exit $W $BATON_TOKEN" >>"$EVENTS"'

    # chaos_worker NODE_INDEX ID: takes 'chaos' until $tmp/chaos-stop exists;
    # exit statuses other than the expected ones go to chaos-errors.
    chaos_worker() {
        local i=$1 w="node$1.w$2" rc
        while [[ ! -e "$tmp/chaos-stop" ]]; do
            rc=0
            W=$w EVENTS=$cevents CUR=$cur COUNTER="${mounts[i - 1]}/chaos-counter" NAP="0.$((RANDOM % 2))$((RANDOM % 9 + 1))" \
                BATON_SOCKET=$(sock "$i") "$baton" run --lock chaos -w 60 -- sh -c "$chaos_critical" \
                2>>"$tmp/chaos-$w.err" || rc=$?
            echo "$rc" >>"$tmp/chaos-rc-$w"
            case $rc in
            0 | 137 | 74) ;;        # done; its command or wrapper killed; lock lost with its daemon
            69) sleep 0.1 ;;        # its daemon is down, restarting
            *) echo "$w: baton run exited $rc: $(tail -n 1 "$tmp/chaos-$w.err")" >>"$tmp/chaos-errors" ;;
            esac
        done
    }

    # The current holder's "W TOKEN SH_PID GUARD_PID", once it is a new one
    # (token above $1) still inside (no exit line yet).
    next_holder() {
        local after=$1 j line t
        for ((j = 0; j < 600; j++)); do
            if line=$(cat "$cur" 2>/dev/null) && [[ -n "$line" ]]; then
                t=$(awk '{ print $2 }' <<<"$line")
                if ((t > after)) && ! grep -q "^exit [^ ]* $t\$" "$cevents"; then
                    printf '%s\n' "$line"
                    return 0
                fi
            fi
            sleep 0.05
        done
        return 1
    }

    # chaos_check: prints problems, returns 1 on any.
    chaos_check() {
        local counter
        counter=$(cat "${mounts[0]}/chaos-counter" 2>/dev/null || echo '?')
        awk -v counter="$counter" '
            function bad(msg) { problems++; if (problems <= 10) print "  " msg }
            FILENAME == ARGV[1] { how[$2] = $3; nkilled++; next }
            NF != 3 || ($1 != "enter" && $1 != "exit") || $3 !~ /^[0-9]+$/ { bad("malformed: " $0); next }
            $1 == "enter" {
                enters++
                if (holder != "" && !(htok in how)) bad($2 " (token " $3 ") entered while " holder " (token " htok ") was inside and alive")
                if (holder != "" && (htok in how)) takeovers[how[htok]]++
                if (enters > 1 && $3 + 0 <= last + 0) bad("token " $3 " of " $2 " does not exceed the previous " last)
                holder = $2; htok = $3; last = $3
                seen[$3] = 1
                next
            }
            {
                exits++
                if (holder == $2 && htok == $3) { holder = ""; next }
                if (how[$3] == "daemon") { late++; next }
                bad($2 " (token " $3 ") exited while " (holder == "" ? "nobody" : holder " (token " htok ")") " held the lock" ($3 in how ? ", after its " how[$3] " was killed" : ""))
            }
            END {
                for (t in how) if (!(t in seen)) bad("killed token " t " never entered")
                # A killed holder wrote the counter or not (a rename is atomic);
                # only one whose daemon was killed may still have written it
                # after the next holder read it (the fenced window).
                if (counter !~ /^[0-9]+$/ || counter + 0 < exits - takeovers["daemon"] || counter + 0 > enters)
                    bad("counter " counter " not between the exits (" exits + 0 ", less " takeovers["daemon"] + 0 " for killed daemons) and the enters (" enters + 0 ")")
                if (problems > 10) print "  ... " problems - 10 " more"
                printf "STATS %d %d %d %d %d %d\n", enters, exits, late, takeovers["holder"], takeovers["wrapper"], takeovers["daemon"]
                exit problems > 0
            }' "$killed" "$cevents"
    }

    log "chaos phase: $nodes nodes x $workers workers take 'chaos' while $chaos_rounds holders are killed with SIGKILL" \
        "(in turn: the command, its baton run, its node's batond)"
    t0=$EPOCHREALTIME
    chaos_pids=()
    for ((i = 1; i <= nodes; i++)); do
        for ((j = 1; j <= workers; j++)); do
            chaos_worker "$i" "$j" &
            chaos_pids+=($!)
        done
    done
    bg_pids+=("${chaos_pids[@]}")
    modes=(holder wrapper daemon)
    last_victim=0
    restarts=""
    r=0
    misses=0
    while ((r < chaos_rounds)); do
        mode=${modes[r % 3]}
        victim=$(next_holder "$last_victim") || fail "chaos round $r: no new holder of 'chaos' within 30 s"
        read -r vw vt vsh vwrap <<<"$victim"
        vnode=${vw%%.*}
        last_victim=$vt
        # The holder may finish between reading it and the kill: then try the
        # next one (a kill that found its target gone does not count).
        case $mode in
        holder)
            echo "$vw $vt $mode" >>"$killed"
            kill -KILL "$vsh" 2>/dev/null || { misses=$((misses + 1)); continue; }
            ;;
        wrapper)
            # CMD's parent is baton run's guard; the wrapper is the guard's parent.
            vwrap=$(awk '$1 == "PPid:" { print $2 }' "/proc/$vwrap/status" 2>/dev/null) || vwrap=0
            if ! tr '\0' ' ' <"/proc/$vwrap/cmdline" 2>/dev/null | grep -q ' run --lock chaos'; then
                misses=$((misses + 1))
                continue
            fi
            echo "$vw $vt $mode" >>"$killed"
            kill -KILL "$vwrap" 2>/dev/null || { misses=$((misses + 1)); continue; }
            ;;
        daemon)
            echo "$vw $vt $mode" >>"$killed"
            kill -KILL "${daemon_pid[$vnode]}"
            wait "${daemon_pid[$vnode]}" 2>/dev/null || true
            unset "daemon_pid[$vnode]"
            t_restart=$EPOCHREALTIME
            start_daemon "${vnode#node}"
            restarts+=" $vnode:$(since "$t_restart")s"
            ;;
        esac
        r=$((r + 1))
        ((misses < 50)) || fail "chaos phase: 50 holders finished before they could be killed"
    done
    # Let the survivors take a few more turns after the last kill.
    more=$(($(grep -c '^enter' "$cevents") + 2 * nodes))
    for ((j = 0; j < 600; j++)); do
        (($(grep -c '^enter' "$cevents") >= more)) && break
        sleep 0.05
    done
    : >"$tmp/chaos-stop"
    wait "${chaos_pids[@]}"
    chaos_s=$(since "$t0")
    if [[ -s "$tmp/chaos-errors" ]]; then
        head -n 20 "$tmp/chaos-errors" >&2
        fail "chaos phase: baton run calls failed in unexpected ways (above)"
    fi
    if ! problems=$(chaos_check); then
        printf '%s\n' "$problems" | grep -v '^STATS' >&2
        fail "chaos phase: the lock did not hold under kill -9 (above)"
    fi
    read -r _ c_enters c_exits c_late k_holder k_wrapper k_daemon <<<"$(grep '^STATS' <<<"$problems")"
    rcs=$(cat "$tmp"/chaos-rc-* | sort -n | uniq -c | awk '{ printf " %s x%s", $2, $1 }')
    log "chaos phase OK in ${chaos_s}s on $(e2e_fs_name): $c_enters grants, $c_exits exits, 0 violations; tokens" \
        "$(awk 'NR == 1 { print $3 }' "$cevents")..$(awk '$1 == "enter" { t = $3 } END { print t }' "$cevents") strictly increasing;" \
        "the next holder entered after $k_holder killed commands, $k_wrapper killed wrappers and $k_daemon killed daemons;" \
        "$c_late late exit lines of holders whose daemon died (fenced window); baton run exit statuses:$rcs;" \
        "batond restarts (to ping):$restarts; $misses holders finished before their kill"
fi

# ---------------------------------------------------------- kill -9 phase
log "kill -9 phase: node1 holds 'kill-test', node2 waits"
# shellcheck disable=SC2016 # expanded by sh -c
BATON_SOCKET=$(sock 1) "$baton" run --lock kill-test -- \
    sh -c 'echo "$BATON_TOKEN" >"$0.token.tmp" && mv "$0.token.tmp" "$0.token"; echo $$ >"$0.pid"; exec sleep 300' \
    "$tmp/holder" >"$tmp/holder.out" 2>&1 &
holder_run=$!
bg_pids+=("$holder_run")
for ((k = 0; k < 100; k++)); do
    [[ -s "$tmp/holder.token" && -s "$tmp/holder.pid" ]] && break
    sleep 0.1
done
[[ -s "$tmp/holder.token" ]] || fail "node1 did not get 'kill-test' within 10 s"
holder_token=$(<"$tmp/holder.token")
holder_cmd=$(<"$tmp/holder.pid")

# shellcheck disable=SC2016 # expanded by sh -c
BATON_SOCKET=$(sock 2) "$baton" run --lock kill-test -w 60 -- \
    sh -c 'echo "$BATON_TOKEN" >"$0.token.tmp" && mv "$0.token.tmp" "$0.token"' \
    "$tmp/waiter" >"$tmp/waiter.out" 2>&1 &
waiter_run=$!
bg_pids+=("$waiter_run")
sleep 1.5
[[ ! -e "$tmp/waiter.token" ]] || fail "node2 got 'kill-test' while node1 held it"
kill -0 "$waiter_run" 2>/dev/null || fail "node2's waiting baton run exited: $(cat "$tmp/waiter.out")"

# node2 sees node1 as the holder, through the holder record on the volume.
BATON_SOCKET=$(sock 2) "$baton" status --json >"$tmp/status2.json" 2>&1 ||
    fail "baton status on node2 failed: $(cat "$tmp/status2.json")"
if ! grep -q '"kill-test"' "$tmp/status2.json" || ! grep -q '"node1"' "$tmp/status2.json"; then
    fail "node2's status does not show node1 holding kill-test: $(cat "$tmp/status2.json")"
fi
log "node2 waits; its status shows node1 holding 'kill-test' (token $holder_token)"

t_kill=$EPOCHREALTIME
kill -KILL "${daemon_pid[node1]}"
wait "${daemon_pid[node1]}" 2>/dev/null || true
unset 'daemon_pid[node1]'
log "killed node1's batond with SIGKILL"

got=0
while [[ $(awk -v a="$t_kill" -v b="$EPOCHREALTIME" 'BEGIN { print (b - a < '"$takeover_max"') }') == 1 ]]; do
    if [[ -s "$tmp/waiter.token" ]]; then got=1; break; fi
    sleep 0.05
done
takeover=$(awk -v a="$t_kill" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
((got)) || fail "node2 did not get 'kill-test' within ${takeover_max}s of node1's batond dying"
waiter_token=$(<"$tmp/waiter.token")
((waiter_token > holder_token)) || fail "node2's token $waiter_token does not exceed node1's $holder_token"
wait "$waiter_run" || fail "node2's baton run failed: $(cat "$tmp/waiter.out")"
log "node2 got 'kill-test' ${takeover}s after node1's batond died (token $waiter_token > $holder_token)"

# node1's baton run lost its daemon while holding: it must stop CMD and exit 74.
rc=0
for ((k = 0; k < 100; k++)); do
    kill -0 "$holder_run" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$holder_run" 2>/dev/null; then fail "node1's baton run still runs 10 s after its batond died"; fi
wait "$holder_run" || rc=$?
cmd_state=$(awk '{ print $3 }' "/proc/$holder_cmd/stat" 2>/dev/null || echo gone)
[[ "$cmd_state" == gone || "$cmd_state" == Z ]] || fail "node1's command (pid $holder_cmd) outlived its lock"
((rc == 74)) || fail "node1's baton run exited $rc, expected 74 (lock lost): $(cat "$tmp/holder.out")"
log "node1's baton run stopped its command and exited 74 (lock lost)"

# A restarted batond on node1 continues the token sequence from the volume.
start_daemon 1
# shellcheck disable=SC2016 # expanded by sh -c
BATON_SOCKET=$(sock 1) "$baton" run --lock kill-test -w 30 -- sh -c 'echo "$BATON_TOKEN"' >"$tmp/after.token" ||
    fail "baton run on the restarted node1 failed"
after_token=$(<"$tmp/after.token")
((after_token > waiter_token)) || fail "token after restart $after_token does not exceed $waiter_token"
log "restarted batond on node1 issued token $after_token > $waiter_token"

# SIGTERM: an orderly exit 0 within the pod's grace budget.
for ((i = 1; i <= nodes; i++)); do
    node=node$i
    pid=${daemon_pid[$node]}
    t_term=$EPOCHREALTIME
    kill -TERM "$pid"
    rc=0
    for ((k = 0; k < 50; k++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then fail "batond on $node still runs 5 s after SIGTERM"; fi
    wait "$pid" || rc=$?
    unset "daemon_pid[$node]"
    ((rc == 0)) || fail "batond on $node exited $rc after SIGTERM, expected 0"
    log "batond on $node exited 0 $(awk -v a="$t_term" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')s after SIGTERM"
done

log "PASS"
