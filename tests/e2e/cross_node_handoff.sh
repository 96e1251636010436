#!/usr/bin/env bash
# e2e.cross_node_handoff, e2e.cephfs_handoff: baton's handoff (publish, cat,
# wait, fencing, spool queues) across two "nodes" that share a real network
# filesystem (E2E_FS=gluster: a one-brick GlusterFS volume mounted twice with
# direct-io-mode=enable, scripts/gluster-volume.sh; E2E_FS=ceph: a single-node
# CephFS mounted twice with ceph-fuse, scripts/ceph-volume.sh), one batond per
# mount.
#
#   tests/e2e/cross_node_handoff.sh BATOND BATON [BATON_CREATE_RACE]
#
# It:
#   0. with BATON_CREATE_RACE (tests/e2e/create_race.cpp): the two mounts open
#      the same new files at one instant E2E_CREATE_ROUNDS (1000) times, as
#      daemons do for the version record of a new path and the lock file of
#      a new lock; none of baton's opens may fail (GlusterFS answers the loser
#      of a plain O_CREAT race with EEXIST, as CI once saw);
#   1. publishes E2E_PUBLISHES (30) versions of a E2E_BYTES (4 MiB) file from
#      node1, each random and ending in a trailer with its sequence number and
#      the SHA-256 of the rest, while node2 reads it over and over through
#      `baton cat` and as a plain file on its own mount. Every read must be
#      one whole version (size and checksum), no reader may go back to an
#      older version, the versions `publish` prints grow by one, and once the
#      last publish returned both kinds of read on node2 see it;
#   2. E2E_WAIT_ROUNDS (4) times, in turn from node1 and from node2: a
#      `baton wait --newer-than V` blocked on one node wakes for a publish on
#      the other (the daemons poll, --poll-interval 0.1: inotify does not see
#      another node's writes) within E2E_WAKE_MAX (5) s, prints exactly the
#      version that publish printed, and the content read then on the waiting
#      node is that publish's;
#   2b. node1 and node2 both publish E2E_RACE_PUBLISHES (8) versions of one
#      path at once: the versions printed must be 1..2N, each once, and the
#      content both nodes then read must be the one with the highest version;
#   2c. node1 and node2 both publish to E2E_FRESH_NAMES (20) new paths and
#      take as many new locks, in the same order, at once (creating the same
#      version records and lock files together): every call must succeed and
#      every path must then be at version 2 on both nodes;
#   3. fencing: node2 gets token T_old from the lock 'fence', then node1 gets
#      T_new > T_old and publishes under it; node2's publish with T_old must be
#      refused (exit 76) and change nothing (version, content, no staging file
#      left), and node2's publish under a newer token T3 > T_new must pass;
#   4. spool queue: E2E_ITEMS (100) items enqueued from both nodes at once,
#      E2E_CONSUMERS (3) consumers per node claiming them with
#      `baton claim --timeout 1 -- CMD`; one item is failed once (CMD exits 3:
#      nack), and the `baton claim` processing another is killed with SIGKILL
#      mid-item. Every item must be processed (acknowledged) exactly once,
#      with the content it was enqueued with; only those two items may be
#      started twice; the killed consumer's command must die with it;
#   4b. node1 enqueues 10 items, node2 claims them without a command: they
#      come out in enqueue order, then the claim times out (75);
#   4c. node1's batond is killed with SIGKILL while its consumer holds an item:
#      node2 must then claim that item (its lock died with the daemon), node1's
#      baton claim must fail and its command must not outlive it;
#   5. stops both daemons with SIGTERM: each must exit 0 within 5 s.
# The checkers (whole-version reads, exactly-once histories) are first run
# against hand-made bad input they must reject, so that they can fail.
#
# Exit 77 (CTest SKIP_RETURN_CODE) when the file system's packages are not
# installed, not root, or /dev/fuse is missing, exactly as e2e.cross_node_locks. Everything is torn
# down on any exit, and an internal deadline (E2E_DEADLINE, 240 s) fires
# before CTest's timeout would SIGKILL us and leave mounts behind.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=tests/e2e/e2e_lib.sh
source "$here/e2e_lib.sh"

publishes=${E2E_PUBLISHES:-30}
body_bytes=${E2E_BYTES:-4194304}
wait_rounds=${E2E_WAIT_ROUNDS:-4}
race_publishes=${E2E_RACE_PUBLISHES:-8}
fresh_names=${E2E_FRESH_NAMES:-20}
create_rounds=${E2E_CREATE_ROUNDS:-1000}
wake_max=${E2E_WAKE_MAX:-5}
items=${E2E_ITEMS:-100}
consumers=${E2E_CONSUMERS:-3}
readonly trailer_bytes=75 # "#" + 8 digits + " " + 64 hex digits + "\n"

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: cross_node_handoff.sh BATOND BATON [BATON_CREATE_RACE]" >&2
    exit 64
fi
batond=$(realpath "$1")
baton=$(realpath "$2")
create_race=${3:+$(realpath "$3")}
[[ -x "$batond" ]] || fail "batond not executable: $1"
[[ -x "$baton" ]] || fail "baton not executable: $2"

e2e_require_fs

# ---------------------------------------------------------------- teardown
# The commands of the consumers killed in step 4 ("sleep 120", their pids in
# $tmp/sleepers), should baton claim have left them behind.
kill_leftover_sleeps() {
    local pid
    [[ -f "$tmp/sleepers" ]] || return 0
    while read -r pid; do
        if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q '^sleep 120'; then
            kill -KILL "$pid" 2>/dev/null
        fi
    done <"$tmp/sleepers"
}
e2e_on_cleanup() {
    : >"$tmp/stop" # readers and consumers stop at their next turn
    kill_leftover_sleeps
}
e2e_init e2e-handoff

# ------------------------------------------------------ versions and reads
# make_version K FILE: E2E_BYTES random bytes, then "#<K, 8 digits> <sha256>\n".
make_version() {
    local k=$1 f=$2 sum
    head -c "$body_bytes" /dev/urandom >"$f.body"
    sum=$(sha256sum <"$f.body")
    printf '#%08d %s\n' "$k" "${sum%% *}" | cat "$f.body" - >"$f"
    rm -f "$f.body"
}

# check_version FILE: prints K if FILE is one whole version, else the reason
# (and returns 1).
check_version() {
    local f=$1 size trailer k sum actual
    size=$(stat -c %s "$f")
    if ((size != body_bytes + trailer_bytes)); then
        echo "size $size, expected $((body_bytes + trailer_bytes))"
        return 1
    fi
    trailer=$(tail -c "$trailer_bytes" "$f" | tr -d '\0')
    if ! [[ "$trailer" =~ ^#([0-9]{8})\ ([0-9a-f]{64})$ ]]; then
        echo "no version trailer at the end"
        return 1
    fi
    k=${BASH_REMATCH[1]}
    sum=${BASH_REMATCH[2]}
    actual=$(head -c "$body_bytes" "$f" | sha256sum)
    if [[ "${actual%% *}" != "$sum" ]]; then
        echo "checksum mismatch: the body is not the one of version $((10#$k))'s trailer"
        return 1
    fi
    echo $((10#$k))
}

# ----------------------------------------------------- queue history check
# check_queue ENQUEUED FAIL_ITEM KILL_ITEM HISTORY...: ENQUEUED has "id content"
# lines; histories have "start|done ID CONSUMER CONTENT" and "nack ID CONSUMER".
# Every item done exactly once with its content; FAIL_ITEM and KILL_ITEM
# started twice (FAIL_ITEM nacked once), every other item once.
check_queue() {
    local enqueued=$1 fail_item=$2 kill_item=$3
    shift 3
    awk -v enq="$enqueued" -v fail_item="$fail_item" -v kill_item="$kill_item" '
        function bad(msg) { problems++; if (problems <= 10) print "  " msg }
        FILENAME == enq {
            if ($1 in content) bad("id " $1 " printed by two enqueues")
            content[$1] = $2; n++
            next
        }
        $1 == "start" || $1 == "done" {
            if (!($2 in content)) { bad($3 " got item " $2 ", which nobody enqueued"); next }
            if (content[$2] != $4) bad($3 " got item " $2 " as \"" $4 "\", enqueued as \"" content[$2] "\"")
            if ($1 == "start") starts[$2]++
            else { dones[$2]++; by[$2] = by[$2] " " $3 }
            next
        }
        $1 == "nack" { nacks[$2]++; next }
        { bad("malformed history line: " $0) }
        END {
            for (id in content) {
                c = content[id]
                want = (c == fail_item || c == kill_item) ? 2 : 1
                if (dones[id] + 0 != 1) bad("item " id " (" c ") processed " dones[id] + 0 " times, by:" by[id])
                if (starts[id] + 0 != want) bad("item " id " (" c ") started " starts[id] + 0 " times, expected " want)
                if (c == fail_item && nacks[id] + 0 != 1) bad("item " id " (" c ") nacked " nacks[id] + 0 " times, expected 1")
                if (c == kill_item) saw_kill = 1
                if (c == fail_item) saw_fail = 1
            }
            if (!saw_kill) bad("no item " kill_item " was enqueued")
            if (!saw_fail) bad("no item " fail_item " was enqueued")
            if (problems > 10) print "  ... " problems - 10 " more"
            exit problems > 0
        }' "$enqueued" "$@"
}

# ------------------------------------------------ the checkers can fail
mkdir -p "$tmp/control"
(
    cd "$tmp/control"
    make_version 1 v1
    make_version 2 v2
    [[ "$(check_version v1)" == 1 ]] || fail "control: a whole version was not recognised: $(check_version v1)"
    half=$(((body_bytes + trailer_bytes) / 2))
    { head -c "$half" v1; tail -c +"$((half + 1))" v2; } >torn
    if check_version torn >/dev/null; then fail "control: a torn version (half v1, half v2) passed the check"; fi
    head -c "$half" v1 >short
    if check_version short >/dev/null; then fail "control: half a version passed the check"; fi
    { head -c "$half" v1; head -c 4096 /dev/zero; tail -c +"$((half + 4097))" v1; } >holed
    if check_version holed >/dev/null; then fail "control: a version with a hole passed the check"; fi

    printf '%s\n' "q1 a" "q2 b" "q3 c" >enq
    printf '%s\n' "start q1 x a" "done q1 x a" "start q2 x b" "nack q2 x" "start q3 y c" >h1
    printf '%s\n' "start q2 y b" "done q2 y b" "start q3 z c" "done q3 z c" >h2
    check_queue enq b c h1 h2 >/dev/null || fail "control: a correct queue history was rejected: $(check_queue enq b c h1 h2)"
    printf '%s\n' "start q1 z a" "done q1 z a" >dup
    if check_queue enq b c h1 h2 dup >/dev/null; then fail "control: an item processed twice passed the check"; fi
    if check_queue enq b c h1 >/dev/null; then fail "control: an item never processed passed the check"; fi
    printf '%s\n' "start q1 x a" "done q1 x A" "start q2 x b" "nack q2 x" "start q3 y c" >h1bad
    if check_queue enq b c h1bad h2 >/dev/null; then fail "control: an item with altered content passed the check"; fi
)
rm -rf "$tmp/control"
log "checkers reject torn, short and holed versions, and duplicate, lost and altered queue items"

# ------------------------------------------------------------------ volume
e2e_volume_up 2

# ------------------------------------------- 0. creating the same new files
if [[ -n "$create_race" ]]; then
    log "create-race phase: the two mounts open the same new files with O_CREAT at one instant, $create_rounds times"
    out=$("$create_race" "${mounts[0]}" "${mounts[1]}" "$create_rounds" 2>&1) ||
        fail "creating the same files from two nodes at once failed: $(tail -n 5 <<<"$out")"
    log "create-race phase OK: $out"
    rm -rf "${mounts[0]}/create-race"
fi

# ----------------------------------------------------------------- daemons
sock() { printf '%s/node%d/baton.sock' "$tmp" "$1"; }
# on NODE_INDEX CMD...: run CMD with that node's socket.
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
        --log-level debug --poll-interval 0.1 >>"$tmp/batond-$node.log" 2>&1 </dev/null &
    daemon_pid[$node]=$!
    for ((k = 0; k < 100; k++)); do
        if on "$i" "$baton" ping >/dev/null 2>&1; then return 0; fi
        kill -0 "${daemon_pid[$node]}" 2>/dev/null || fail "batond on $node exited at start-up"
        sleep 0.1
    done
    fail "batond on $node does not answer ping after 10 s"
}

t0=$SECONDS
start_daemon 1
start_daemon 2
log "batond up on node1 and node2 in $((SECONDS - t0))s (--poll-interval 0.1)"

# publish_version NODE_INDEX K DEST [PUBLISH_OPTS...]: a fresh version K of
# DEST published through that node; prints the version publish printed.
publish_version() {
    local i=$1 k=$2 dest=$3 f="$tmp/pub-node$1"
    shift 3
    make_version "$k" "$f"
    on "$i" "$baton" publish "$@" "$f" "$dest"
}

# read_version NODE_INDEX cat|plain PATH: check_version of one read on that node.
read_version() {
    local i=$1 how=$2 path=$3 out="$tmp/read-node$1-$2"
    if [[ "$how" == cat ]]; then
        on "$i" "$baton" cat "$path" >"$out" || { echo "baton cat failed"; return 1; }
    else
        cat "${mounts[i - 1]}/$path" >"$out" || { echo "cat failed"; return 1; }
    fi
    check_version "$out"
}

# ------------------------------------------------------ 1. torn-read phase
# reader NAME NODE_INDEX cat|plain: reads big.bin until $tmp/stop exists; one
# line per read in $tmp/reads-NAME: "ok K", "torn REASON", "back K LAST",
# "error RC STDERR".
reader() {
    local name=$1 i=$2 how=$3 out="$tmp/reader-$1" last=-1 k rc
    while [[ ! -e "$tmp/stop" ]]; do
        rc=0
        if [[ "$how" == cat ]]; then
            on "$i" "$baton" cat big.bin >"$out" 2>"$out.err" || rc=$?
        else
            cat "${mounts[i - 1]}/big.bin" >"$out" 2>"$out.err" || rc=$?
        fi
        if ((rc != 0)); then
            echo "error $rc $(head -c 300 "$out.err" | tr '\n' ' ')"
        elif ! k=$(check_version "$out"); then
            echo "torn $k"
        elif ((k < last)); then
            echo "back $k $last"
        else
            echo "ok $k"
            last=$k
        fi
    done >"$tmp/reads-$name"
}

log "torn-read phase: node1 publishes $publishes versions of a $((body_bytes / 1024)) KiB file;" \
    "node2 reads it through 'baton cat' and as a plain file meanwhile"
v=$(publish_version 1 0 big.bin) || fail "the first publish on node1 failed"
rm -f "$tmp/stop"
reader cat 2 cat &
reader_cat=$!
reader plain 2 plain &
reader_plain=$!
bg_pids+=("$reader_cat" "$reader_plain")

t0=$EPOCHREALTIME
for ((k = 1; k <= publishes; k++)); do
    prev=$v
    v=$(publish_version 1 "$k" big.bin) || fail "publish $k on node1 failed"
    ((v == prev + 1)) || fail "publish $k on node1 printed version $v after $prev: expected $((prev + 1))"
done
publish_s=$(since "$t0")
: >"$tmp/stop"
wait "$reader_cat" "$reader_plain"
rm -f "$tmp/stop"

summary=""
for name in cat plain; do
    f="$tmp/reads-$name"
    if grep -qv '^ok ' "$f"; then
        grep -v '^ok ' "$f" | sort | uniq -c | sort -rn | head -n 10 >&2
        fail "node2's $name reader saw something other than whole, non-decreasing versions (above)"
    fi
    n=$(wc -l <"$f")
    distinct=$(awk '{ print $2 }' "$f" | sort -u | wc -l)
    ((distinct >= 2)) || fail "node2's $name reader saw only $distinct version(s) in $n reads: it did not overlap the publishes"
    summary+=" $name: $n reads of $distinct versions;"
done
last_v=$v
for how in cat plain; do
    k=$(read_version 2 "$how" big.bin) || fail "node2's $how read after the last publish: $k"
    ((k == publishes)) || fail "node2's $how read after the last publish returned version $k, expected $publishes"
done
log "torn-read phase OK: $publishes publishes in ${publish_s}s, versions $((last_v - publishes))..$last_v;" \
    "node2 read only whole versions, never going back:${summary} both see the last one once publish returned"

# ------------------------------------------------------- 2. wait across nodes
log "wait phase: $wait_rounds rounds of 'baton wait --newer-than' on one node woken by a publish on the other"
latencies=""
for ((r = 1; r <= wait_rounds; r++)); do
    pub=$((r % 2 == 1 ? 1 : 2))
    waiter=$((3 - pub))
    k=$((publishes + r))
    cur=$(on "$waiter" "$baton" wait big.bin --timeout 5) || fail "round $r: baton wait on node$waiter failed"
    ((cur == last_v)) || fail "round $r: node$waiter reports version $cur of big.bin, the last publish printed $last_v"
    on "$waiter" "$baton" wait big.bin --newer-than "$cur" --timeout 20 >"$tmp/wait.out" 2>"$tmp/wait.err" &
    wait_pid=$!
    bg_pids+=("$wait_pid")
    # Give the wait time to reach its daemon, so that the publish must wake it
    # (the outcome must be the same without this pause).
    sleep 0.3
    kill -0 "$wait_pid" 2>/dev/null ||
        fail "round $r: 'baton wait --newer-than $cur' on node$waiter returned before any publish: $(cat "$tmp/wait.out" "$tmp/wait.err")"
    v=$(publish_version "$pub" "$k" big.bin) || fail "round $r: publish on node$pub failed"
    t_pub=$EPOCHREALTIME
    ((v == last_v + 1)) || fail "round $r: publish on node$pub printed version $v after $last_v"
    for ((j = 0; j < wake_max * 50; j++)); do
        kill -0 "$wait_pid" 2>/dev/null || break
        sleep 0.02
    done
    kill -0 "$wait_pid" 2>/dev/null &&
        fail "round $r: node$waiter's wait still blocks ${wake_max}s after node$pub published version $v"
    latency=$(since "$t_pub")
    rc=0
    wait "$wait_pid" || rc=$?
    ((rc == 0)) || fail "round $r: node$waiter's wait exited $rc: $(cat "$tmp/wait.err")"
    woke=$(<"$tmp/wait.out")
    [[ "$woke" == "$v" ]] || fail "round $r: node$waiter's wait printed '$woke', the publish on node$pub printed $v"
    for how in cat plain; do
        got=$(read_version "$waiter" "$how" big.bin) || fail "round $r: $how read on node$waiter after the wake: $got"
        ((got == k)) || fail "round $r: node$waiter woke for version $v but its $how read returned content $got, not $k"
    done
    last_v=$v
    latencies+=" ${latency}s (node$pub->node$waiter)"
done
log "wait phase OK: each wait woke with exactly the new version and read its content; latencies:$latencies"

# ------------------------------------- 2b. concurrent publishers, both nodes
log "concurrent-publish phase: node1 and node2 both publish $race_publishes versions of race.bin at once"
# racer NODE_INDEX: publishes versions NODE*1000+1.. of race.bin; "VERSION K" lines.
racer() {
    local i=$1 j v
    for ((j = 1; j <= race_publishes; j++)); do
        v=$(publish_version "$i" $((i * 1000 + j)) race.bin) || {
            echo "publish $j on node$i failed" >>"$tmp/race-errors"
            continue
        }
        echo "$v $((i * 1000 + j))"
    done >"$tmp/race-node$i"
}
t0=$EPOCHREALTIME
racer 1 &
racer1=$!
racer 2 &
racer2=$!
bg_pids+=("$racer1" "$racer2")
wait "$racer1" "$racer2"
race_s=$(since "$t0")
[[ ! -s "$tmp/race-errors" ]] || fail "concurrent publishes failed: $(head -n 5 "$tmp/race-errors")"
sort -n "$tmp/race-node1" "$tmp/race-node2" >"$tmp/race-all"
want=$((2 * race_publishes))
got=$(awk -v want="$want" '$1 != NR { print "versions printed: " $1 " where " NR " was due"; exit } END { if (NR != want) print NR " publishes, expected " want }' "$tmp/race-all")
[[ -z "$got" ]] || fail "the versions of concurrent publishes from two nodes are not 1..$want, each once: $got ($(awk '{ print $1 }' "$tmp/race-all" | tr '\n' ' '))"
newest=$(awk 'END { print $2 }' "$tmp/race-all")
for i in 1 2; do
    for how in cat plain; do
        got=$(read_version "$i" "$how" race.bin) || fail "$how read of race.bin on node$i: $got"
        ((got == newest)) || fail "race.bin on node$i ($how) holds content $got, but content $newest got the highest version $want"
    done
done
interleaved=$(awk '{ print int($2 / 1000) }' "$tmp/race-all" | uniq | wc -l)
log "concurrent-publish phase OK in ${race_s}s: versions 1..$want, each printed once, $interleaved runs of one node;" \
    "the content both nodes read is the one with version $want"

# ------------------------------------------------ 2c. first use of new names
# Both nodes create the same new files at once: the version record of a new
# path and the lock file of a new lock. On FUSE and NFS, O_CREAT is a lookup
# then a create, and the loser of that race sees EEXIST.
log "fresh-name phase: node1 and node2 both publish to $fresh_names new paths and lock $fresh_names new names at once"
fresh_racer() {
    local i=$1 j out
    printf 'from node%s\n' "$i" >"$tmp/fresh-node$i"
    while [[ ! -e "$tmp/fresh-go" ]]; do sleep 0.01; done
    for ((j = 1; j <= fresh_names; j++)); do
        out=$(on "$i" "$baton" publish "$tmp/fresh-node$i" "fresh/p$j" 2>&1) ||
            echo "node$i: publish fresh/p$j: $out" >>"$tmp/fresh-errors"
        out=$(on "$i" "$baton" run --lock "fresh-$j" -- true 2>&1) ||
            echo "node$i: lock fresh-$j: $out" >>"$tmp/fresh-errors"
    done
}
fresh_racer 1 &
racer1=$!
fresh_racer 2 &
racer2=$!
bg_pids+=("$racer1" "$racer2")
: >"$tmp/fresh-go"
wait "$racer1" "$racer2"
[[ ! -s "$tmp/fresh-errors" ]] || fail "first uses of new names from two nodes failed: $(head -n 5 "$tmp/fresh-errors")"
for ((j = 1; j <= fresh_names; j++)); do
    for i in 1 2; do
        v=$(on "$i" "$baton" wait "fresh/p$j" --timeout 5) || fail "baton wait fresh/p$j on node$i failed"
        ((v == 2)) || fail "fresh/p$j is at version $v on node$i after one publish from each node, expected 2"
    done
done
log "fresh-name phase OK: $((2 * fresh_names)) publishes and $((2 * fresh_names)) locks, every path at version 2 on both nodes"

# ---------------------------------------------------------------- 3. fencing
log "fencing phase: a stale token from node2 after node1 published under a newer one"
# shellcheck disable=SC2016 # expanded by sh -c
t_old=$(on 2 "$baton" run --lock fence -- sh -c 'echo "$BATON_TOKEN"') || fail "node2 could not take 'fence'"
make_version 50 "$tmp/fence-node1"
# shellcheck disable=SC2016 # expanded by sh -c
on 1 "$baton" run --lock fence -- sh -c 'echo "$BATON_TOKEN" >"$0.token" && "$1" publish --token "$BATON_TOKEN" "$2" fenced.bin >"$0.version"' \
    "$tmp/fence1" "$baton" "$tmp/fence-node1" ||
    fail "node1's publish under its own token failed"
t_new=$(<"$tmp/fence1.token")
v_f=$(<"$tmp/fence1.version")
((t_new > t_old)) || fail "node1's token $t_new does not exceed node2's earlier $t_old"
k_f=$(read_version 2 cat fenced.bin) || fail "node2 cannot read node1's fenced.bin: $k_f"
((k_f == 50)) || fail "node2 reads content $k_f of fenced.bin, node1 published 50"

make_version 99 "$tmp/fence-node2"
rc=0
on 2 "$baton" publish --token "$t_old" "$tmp/fence-node2" fenced.bin >"$tmp/stale.out" 2>"$tmp/stale.err" || rc=$?
((rc == 76)) || fail "node2's publish with stale token $t_old (node1 used $t_new) exited $rc, expected 76: $(cat "$tmp/stale.out" "$tmp/stale.err")"
[[ ! -s "$tmp/stale.out" ]] || fail "the refused publish printed a version: $(cat "$tmp/stale.out")"
v_now=$(on 2 "$baton" wait fenced.bin --timeout 5) || fail "baton wait fenced.bin on node2 failed"
((v_now == v_f)) || fail "the refused publish moved fenced.bin from version $v_f to $v_now"
for i in 1 2; do
    for how in cat plain; do
        got=$(read_version "$i" "$how" fenced.bin) || fail "$how read of fenced.bin on node$i after the refused publish: $got"
        ((got == k_f)) || fail "after the refused publish, node$i's $how read returned version $got, not node1's $k_f"
    done
done
leftover=$(find "${mounts[0]}" -maxdepth 1 -name '.baton-stage*' -printf '%f ')
[[ -z "$leftover" ]] || fail "staging files left on the volume after the refused publish: $leftover"
# shellcheck disable=SC2016 # expanded by sh -c
on 2 "$baton" run --lock fence -- sh -c 'echo "$BATON_TOKEN" >"$0.token" && "$1" publish --token "$BATON_TOKEN" "$2" fenced.bin >"$0.version"' \
    "$tmp/fence3" "$baton" "$tmp/fence-node2" ||
    fail "node2's publish under a newer token (after taking 'fence' again) failed"
t3=$(<"$tmp/fence3.token")
v3=$(<"$tmp/fence3.version")
((t3 > t_new)) || fail "node2's new token $t3 does not exceed $t_new"
((v3 == v_f + 1)) || fail "node2's publish under token $t3 printed version $v3, expected $((v_f + 1))"
got=$(read_version 1 cat fenced.bin) || fail "node1 cannot read node2's fenced.bin: $got"
((got == 99)) || fail "node1 reads content $got of fenced.bin after node2's accepted publish, expected 99"
log "fencing phase OK: token $t_old refused with 76 after $t_new (version $v_f and content kept, no staging" \
    "file left); token $t3 from node2 accepted (version $v3, seen on node1)"

# ------------------------------------------------------------ 4. spool queue
has_command() { "$baton" --help 2>/dev/null | grep -q "^ $1 "; }
if ! has_command enqueue || ! has_command claim; then
    fail "this baton has no enqueue/claim commands: the queue phase cannot run"
fi
per_node=$((items / 2))
items=$((per_node * 2))
fail_item=$(printf 'item-%03d' $((per_node / 3 + 1)))
kill_item=$(printf 'item-%03d' $((per_node + per_node / 2)))
log "queue phase: $items items enqueued from both nodes, $consumers consumers per node;" \
    "$fail_item fails once, the claim holding $kill_item is killed with SIGKILL"
mkdir -p "$tmp/marks"

# producer NODE_INDEX FIRST LAST: enqueue item-FIRST..item-LAST; "id content" lines.
producer() {
    local i=$1 n id
    for ((n = $2; n <= $3; n++)); do
        id=$(printf 'item-%03d\n' "$n" | on "$i" "$baton" enqueue queues/work -) ||
            { echo "enqueue of item $n on node$i failed" >>"$tmp/queue-errors"; continue; }
        printf '%s item-%03d\n' "$id" "$n"
    done >"$tmp/enq-node$i"
}

# The consumer's command: the item on stdin, BATON_ITEM its id.
# shellcheck disable=SC2016 # expanded by sh -c
consume='item=$(cat)
echo "start $BATON_ITEM $C $item" >>"$HIST"
if [ "$item" = "$FAIL_ITEM" ] && mkdir "$MARKS/fail" 2>/dev/null; then
    echo "nack $BATON_ITEM $C" >>"$HIST"
    exit 3
fi
if [ "$item" = "$KILL_ITEM" ] && mkdir "$MARKS/kill" 2>/dev/null; then
    echo "$PPID $$" >"$MARKS/kill/pids.tmp" && mv "$MARKS/kill/pids.tmp" "$MARKS/kill/pids"
    exec sleep 120
fi
echo "done $BATON_ITEM $C $item" >>"$HIST"'

# gone_within SECONDS PID: whether PID is gone (or a zombie) within SECONDS.
gone_within() {
    local j
    for ((j = 0; j < $1 * 20; j++)); do
        [[ -d "/proc/$2" && "$(awk '{ print $3 }' "/proc/$2/stat" 2>/dev/null)" != Z ]] || return 0
        sleep 0.05
    done
    return 1
}

done_count() { cat "$tmp"/hist-* 2>/dev/null | grep -c '^done ' || true; }

# consumer NODE_INDEX J: claims until every item is done (or $tmp/stop).
consumer() {
    local i=$1 c="node$1.c$2" rc
    : >"$tmp/hist-$c"
    while [[ ! -e "$tmp/stop" ]] && (($(done_count) < items)); do
        rc=0
        C=$c HIST="$tmp/hist-$c" MARKS="$tmp/marks" FAIL_ITEM=$fail_item KILL_ITEM=$kill_item \
            on "$i" "$baton" claim queues/work --timeout 1 -- sh -c "$consume" 2>>"$tmp/claim-$c.err" || rc=$?
        case $rc in
        0 | 75) ;;                                    # acknowledged; nothing within 1 s
        3) echo "$c: nack" >>"$tmp/queue-events" ;;   # the failing item
        137) echo "$c: killed" >>"$tmp/queue-events" ;; # the SIGKILL below
        *) echo "$c: baton claim exited $rc: $(tail -n 1 "$tmp/claim-$c.err")" >>"$tmp/queue-errors" ;;
        esac
    done
}

t0=$EPOCHREALTIME
producer 1 1 "$per_node" &
prod1=$!
producer 2 $((per_node + 1)) "$items" &
prod2=$!
bg_pids+=("$prod1" "$prod2")
# Consumers start once the queue exists (the first enqueue creates it).
for ((j = 0; j < 200; j++)); do
    [[ -d "${mounts[0]}/queues/work/new" ]] && break
    sleep 0.05
done
[[ -d "${mounts[0]}/queues/work/new" ]] || fail "the first enqueue did not create queues/work within 10 s"
consumer_pids=()
for i in 1 2; do
    for ((j = 1; j <= consumers; j++)); do
        consumer "$i" "$j" &
        consumer_pids+=($!)
    done
done
bg_pids+=("${consumer_pids[@]}")

# Kill the claim of KILL_ITEM while its command runs.
for ((j = 0; j < 600; j++)); do
    [[ -s "$tmp/marks/kill/pids" ]] && break
    sleep 0.05
done
[[ -s "$tmp/marks/kill/pids" ]] || fail "no consumer started $kill_item within 30 s"
read -r claim_pid cmd_pid <"$tmp/marks/kill/pids"
# CMD runs under baton claim's guard process (cli/command_guard.hpp): the
# claim is its parent.
if [[ $(cat "/proc/$claim_pid/comm" 2>/dev/null) == "baton guard" ]]; then
    claim_pid=$(sed 's/.*) //' "/proc/$claim_pid/stat" | cut -d' ' -f2)
fi
echo "$cmd_pid" >>"$tmp/sleepers"
tr '\0' ' ' <"/proc/$claim_pid/cmdline" | grep -q ' claim ' ||
    fail "the parent of $kill_item's command (pid $claim_pid) is not baton claim: $(tr '\0' ' ' <"/proc/$claim_pid/cmdline")"
kill -KILL "$claim_pid"
t_kill=$EPOCHREALTIME
cmd_survived=0
if ! gone_within 5 "$cmd_pid"; then cmd_survived=1; fi
# Back: claimed (started) a second time, by any consumer.
back_s=""
for ((j = 0; j < 600; j++)); do
    if (($(cat "$tmp"/hist-* | grep -c "^start .* $kill_item\$") >= 2)); then
        back_s=$(since "$t_kill")
        break
    fi
    sleep 0.02
done
wait "$prod1" "$prod2"
enqueue_s=$(since "$t0")
wait "${consumer_pids[@]}"
queue_s=$(since "$t0")

if [[ -s "$tmp/queue-errors" ]]; then
    head -n 20 "$tmp/queue-errors" >&2
    fail "some enqueue or claim calls failed (above)"
fi
cat "$tmp"/enq-node1 "$tmp"/enq-node2 >"$tmp/enqueued"
if ! problems=$(check_queue "$tmp/enqueued" "$fail_item" "$kill_item" "$tmp"/hist-*); then
    printf '%s\n' "$problems" >&2
    fail "the queue did not process every item exactly once (above)"
fi
[[ -n "$back_s" ]] || fail "$kill_item never came back after its claim was killed"
((cmd_survived == 0)) || fail "the command of the killed 'baton claim' (pid $cmd_pid) outlived it: it still works on $kill_item, which was given back"
leftover=$(find "${mounts[1]}/queues/work" -type f | head -n 5)
[[ -z "$leftover" ]] || fail "files left in the queue after every item was acknowledged: $leftover"
per_consumer=$(grep -c '^done ' "$tmp"/hist-* | sed 's#.*/hist-##' | tr '\n' ' ')
log "queue phase OK in ${queue_s}s (enqueues done in ${enqueue_s}s): $items items each processed exactly once;" \
    "$fail_item nacked once and redone, $kill_item claimed again ${back_s}s after its claim was killed (its command" \
    "died with it); done per consumer: $per_consumer"

# --------------------------------------- 4b. FIFO, claim without a command
fifo_items=10
log "FIFO phase: node1 enqueues $fifo_items items, node2 claims them without a command (item on stdout)"
for ((n = 1; n <= fifo_items; n++)); do
    printf 'fifo-%02d\n' "$n" | on 1 "$baton" enqueue queues/fifo - >/dev/null || fail "enqueue of fifo-$n on node1 failed"
done
for ((n = 1; n <= fifo_items; n++)); do
    got=$(on 2 "$baton" claim queues/fifo --timeout 5) || fail "claim $n of queues/fifo on node2 failed"
    [[ "$got" == "$(printf 'fifo-%02d' "$n")" ]] || fail "claim $n on node2 returned '$got', expected fifo-$(printf '%02d' "$n") (enqueue order)"
done
rc=0
on 2 "$baton" claim queues/fifo --timeout 0.5 >"$tmp/fifo-extra" 2>&1 || rc=$?
((rc == 75)) || fail "a claim of the emptied queues/fifo exited $rc, expected 75 (timeout): $(cat "$tmp/fifo-extra")"
leftover=$(find "${mounts[0]}/queues/fifo" -type f | head -n 5)
[[ -z "$leftover" ]] || fail "claims without a command left files in the queue: $leftover"
log "FIFO phase OK: node2 got the $fifo_items items of node1 in enqueue order, then a timeout (75)"

# ------------------------------------- 4c. the consumer's daemon dies
log "orphan phase: node1's batond dies with SIGKILL while one of its consumers holds an item"
item=$(echo orphan-1 | on 2 "$baton" enqueue queues/orphan -) || fail "enqueue of orphan-1 on node2 failed"
# shellcheck disable=SC2016 # expanded by sh -c
on 1 "$baton" claim queues/orphan --timeout 10 -- \
    sh -c 'echo "$$" >"$0.pid.tmp" && mv "$0.pid.tmp" "$0.pid" && exec sleep 120' "$tmp/orphan" \
    >"$tmp/orphan.out" 2>&1 &
orphan_claim=$!
bg_pids+=("$orphan_claim")
for ((j = 0; j < 200; j++)); do
    [[ -s "$tmp/orphan.pid" ]] && break
    sleep 0.05
done
[[ -s "$tmp/orphan.pid" ]] || fail "node1 did not claim orphan-1 within 10 s: $(cat "$tmp/orphan.out")"
orphan_cmd=$(<"$tmp/orphan.pid")
echo "$orphan_cmd" >>"$tmp/sleepers"
kill -KILL "${daemon_pid[node1]}"
wait "${daemon_pid[node1]}" 2>/dev/null || true
unset 'daemon_pid[node1]'
t_kill=$EPOCHREALTIME
got=$(on 2 "$baton" claim queues/orphan --timeout 15) ||
    fail "node2 did not get orphan-1 (item $item) within 15 s of node1's batond dying"
[[ "$got" == orphan-1 ]] || fail "node2 claimed '$got' from queues/orphan, expected orphan-1"
orphan_s=$(since "$t_kill")
gone_within 10 "$orphan_claim" || fail "node1's baton claim still runs 10 s after its batond died"
rc=0
wait "$orphan_claim" || rc=$?
((rc != 0)) || fail "node1's baton claim exited 0 after its batond died while it held an item"
gone_within 5 "$orphan_cmd" ||
    fail "node1's consumer command (pid $orphan_cmd) outlived its baton claim, which lost the item with its batond"
start_daemon 1
log "orphan phase OK: node2 claimed orphan-1 ${orphan_s}s after node1's batond died; node1's baton claim" \
    "exited $rc and its command is gone; batond restarted on node1"

# ---------------------------------------------------------------- 5. SIGTERM
for node in node1 node2; do
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
    log "batond on $node exited 0 $(since "$t_term")s after SIGTERM"
done

log "PASS"
