#!/usr/bin/env bash
# CMD's whole process tree never outlives the lock (or the claimed item):
# a grandchild in CMD's process group, a child in a session of its own
# (setsid) and a double-forked daemon are all gone
#   (a) when the lock is lost: within --kill-after + 1 s, and before
#       `baton run` returns 74;
#   (b) when `baton run` (or `baton claim`) is killed with SIGKILL: before
#       another client gets the lock (or the item);
#   (c) when a forwarded SIGTERM kills CMD (sh, which does not pass it on);
#   (d) when CMD exits and leaves them behind;
# each with processes that die on SIGTERM and with processes that ignore it.
#
#   process_tree_cli.sh BATOND BATON
# shellcheck disable=SC2016  # single-quoted $VARS are for CMD to expand
# shellcheck disable=SC2317  # helpers called through check
set -euo pipefail

batond=$(realpath "$1")
baton=$(realpath "$2")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cli/cli_test_lib.sh
source "$here/cli_test_lib.sh"
sock_a=$work/a.sock
locks=$root/.baton/locks

# Every pid a tree recorded, killed at exit whatever happened: on a baton
# that lets them escape they would otherwise sleep on for 1000 s.
recorded=()
cleanup_trees() {
    local pid
    for pid in "${recorded[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    cleanup
}
trap cleanup_trees EXIT

# The leaf of a tree: records its pid in $1, ignores SIGTERM if $2 is
# "stubborn", and sleeps (exec keeps an ignored signal ignored).
cat >"$work/leaf.sh" <<'EOF'
[ "$2" = stubborn ] && trap '' TERM
echo $$ >"$1.tmp" && mv "$1.tmp" "$1"
exec sleep 1000
EOF

# CMD: tree.sh DIR MODE ACTION [LOCK_FILE]. Starts a grandchild, a setsid
# child and a double-forked setsid daemon (leaves, MODE as above), waits
# until all three recorded their pids, records its own, then ACTION:
#   lose  note the time in DIR/lost_at, remove LOCK_FILE, loop
#   loop  loop (to be killed)
#   fg    run one more leaf in the foreground (sh waits for it)
#   exit  exit 0, leaving the leaves behind
# With MODE stubborn, sh ignores SIGTERM too, except for fg.
cat >"$work/tree.sh" <<'EOF'
dir=$1 mode=$2 action=$3
leaf=$(dirname "$0")/leaf.sh
sh "$leaf" "$dir/grandchild" "$mode" </dev/null >/dev/null 2>&1 &
setsid sh "$leaf" "$dir/session" "$mode" </dev/null >/dev/null 2>&1 &
sh -c 'setsid sh "$0" "$1" "$2" & exit 0' "$leaf" "$dir/daemon" "$mode" </dev/null >/dev/null 2>&1 &
until [ -s "$dir/grandchild" ] && [ -s "$dir/session" ] && [ -s "$dir/daemon" ]; do
    sleep 0.01
done
echo $$ >"$dir/cmd.tmp" && mv "$dir/cmd.tmp" "$dir/cmd"
[ "$mode" = stubborn ] && [ "$action" != fg ] && trap '' TERM
case $action in
    lose) date +%s%N >"$dir/lost_at"; rm "$4"; while :; do sleep 0.05; done ;;
    loop) while :; do sleep 0.05; done ;;
    fg) sh "$leaf" "$dir/foreground" polite ;;
    exit) exit 0 ;;
esac
EOF

# alive PID: PID exists and is not a zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ -n $stat && ${stat%% *} != Z ]]
}

# tree_pids DIR: the pids DIR's tree recorded (and remembers them).
tree_pids() {
    local file found=()
    for file in "$1"/grandchild "$1"/session "$1"/daemon "$1"/foreground "$1"/cmd; do
        [[ -s $file ]] && found+=("$(cat "$file")")
    done
    recorded+=("${found[@]}")
    echo "${found[@]}"
}

# survivors DIR: the tree's processes still alive, as "name:pid" words.
survivors() {
    local file running=()
    for file in "$1"/grandchild "$1"/session "$1"/daemon "$1"/foreground "$1"/cmd; do
        [[ -s $file ]] && alive "$(cat "$file")" && running+=("${file##*/}:$(cat "$file")")
    done
    echo "${running[@]}"
}
all_gone() { [[ -z $(survivors "$1") ]]; }
recorded_all() { [[ -s $1/grandchild && -s $1/session && -s $1/daemon && -s $1/cmd ]]; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

start_daemon "$sock_a" pod-a --lock-check-interval 0.1

# ---------------------------------------------------- (a) the lock is lost
for mode in polite stubborn; do
    dir=$work/lose-$mode
    mkdir -p "$dir"
    run run --lock "tree/lose-$mode" --kill-after 1 -- \
        sh "$work/tree.sh" "$dir" "$mode" lose "$locks/tree+lose-$mode.lock"
    ended=$(now_ms)
    tree_pids "$dir" >/dev/null
    # Stubborn processes earn a second line: "... still running 1 s after
    # SIGTERM; killing ...".
    check "$mode tree, lock lost: 74" "$mode tree, lock lost: exit $rc: $(cat "$work/err")" \
        test "$rc" = 74
    check "$mode tree, lock lost: the first line says so" "$mode tree, lock lost: stderr: $(cat "$work/err")" \
        grep -Eq "^baton: lock 'tree/lose-$mode' lost: .*; stopping sh \(pid [0-9]+\)$" "$work/err"
    left=$(survivors "$dir")
    check "$mode tree: all gone when baton run returns" \
        "$mode tree, lock lost: still alive after baton run returned: $left" test -z "$left"
    if [[ -s $dir/lost_at ]]; then
        took=$((ended - $(cat "$dir/lost_at") / 1000000))
        echo "     ($mode: lock file removed -> baton run returned: $took ms)"
        check "$mode tree: within --kill-after + 1 s of the loss" \
            "$mode tree: baton run returned $took ms after the loss (bound 2000 ms)" \
            test "$took" -le 2000
    else
        fail "$mode tree: CMD never removed the lock file"
    fi
    eventually 5 all_gone "$dir" || true
done

# --------------------------------------- (b) baton run killed with SIGKILL
declare -f alive survivors now_ms >"$work/probe_lib.sh"
# queued NAME: one request waits for lock NAME.
queued() {
    "$baton" --socket "$sock_a" status 2>/dev/null |
        awk -v n="$1" '$1 == "NAME" { for (i = 1; i <= NF; i++) if ($i == "WAITERS") w = i; next }
                       $1 == n && $w == 1 { f = 1 } END { exit !f }'
}
# A probe waits for the same lock; when it gets it, it lists which of the
# tree's processes still run. Nothing may.
for mode in polite stubborn; do
    dir=$work/kill-$mode
    mkdir -p "$dir"
    "$baton" --socket "$sock_a" run --lock "tree/kill-$mode" --kill-after 1 -- \
        sh "$work/tree.sh" "$dir" "$mode" loop >/dev/null 2>"$dir/err" &
    wrapper=$!
    if ! eventually 10 recorded_all "$dir"; then
        fail "$mode tree: CMD did not start its tree"
        kill -KILL "$wrapper" 2>/dev/null || true
        continue
    fi
    tree_pids "$dir" >/dev/null  # in this shell: recorded for the cleanup
    pids=$(tree_pids "$dir")
    # pkill -f on baton's command line finds baton, not the guard too (with
    # both killed, nothing would stop the tree).
    matched=$(pgrep -d ' ' -f -- "run --lock tree/kill-$mode --kill-after 1" || true)
    check "$mode tree: pgrep -f on the command line finds baton run alone" \
        "$mode tree: pgrep -f finds $matched, not $wrapper alone" test "$matched" = "$wrapper"
    # The probe runs `survivors` from CMD, so it sees the moment of the grant.
    "$baton" --socket "$sock_a" run --lock "tree/kill-$mode" -- \
        bash -c 'source "$0"; now_ms >"$1/granted_at"; survivors "$1" >"$1/seen_by_probe"' \
        "$work/probe_lib.sh" "$dir" >/dev/null 2>"$dir/probe.err" &
    probe=$!
    # The probe must be queued behind the wrapper before the kill.
    check "$mode tree: the probe waits for the lock" "$mode tree: the probe is not queued" \
        eventually 10 queued "tree/kill-$mode"
    killed_at=$(now_ms)
    kill -KILL "$wrapper"
    wait "$wrapper" 2>/dev/null || true
    check "$mode tree: all gone within --kill-after + 1 s of kill -9" \
        "$mode tree: still alive 2 s after kill -9 of baton run: $(survivors "$dir")" \
        eventually 2 all_gone "$dir"
    got=0
    wait "$probe" || got=$?
    check "$mode tree: the probe got the lock" "the probe exited $got: $(cat "$dir/probe.err")" test "$got" = 0
    seen=$(cat "$dir/seen_by_probe" 2>/dev/null || echo "(no record)")
    check "$mode tree: the next holder got the lock only after the tree was gone" \
        "$mode tree: the next holder got the lock while these still ran: $seen (pids $pids)" test -z "$seen"
    [[ -s $dir/granted_at ]] &&
        echo "     ($mode: kill -9 -> lock granted to the next holder: $(($(cat "$dir/granted_at") - killed_at)) ms)"
done

# The same when SIGKILL goes to baton run's whole process group (`kill -9
# %1` in a shell, `timeout -s KILL`): the guard is not in it.
dir=$work/kill-group
mkdir -p "$dir"
setsid "$baton" --socket "$sock_a" run --lock tree/kill-group --kill-after 1 -- \
    sh "$work/tree.sh" "$dir" stubborn loop >/dev/null 2>"$dir/err" &
wrapper=$!
if eventually 10 recorded_all "$dir"; then
    tree_pids "$dir" >/dev/null  # in this shell: recorded for the cleanup
    pids=$(tree_pids "$dir")
    "$baton" --socket "$sock_a" run --lock tree/kill-group -- \
        bash -c 'source "$0"; survivors "$1" >"$1/seen_by_probe"' \
        "$work/probe_lib.sh" "$dir" >/dev/null 2>"$dir/probe.err" &
    probe=$!
    check "group kill: the probe waits for the lock" "group kill: the probe is not queued" \
        eventually 10 queued tree/kill-group
    kill -KILL -- "-$wrapper"
    wait "$wrapper" 2>/dev/null || true
    wait "$probe" || true
    seen=$(cat "$dir/seen_by_probe" 2>/dev/null || echo "(no record: $(cat "$dir/probe.err"))")
    check "group kill: the next holder got the lock only after the tree was gone" \
        "group kill: the next holder got the lock while these still ran: $seen (pids $pids)" test -z "$seen"
else
    fail "group kill: CMD did not start its tree"
    kill -KILL -- "-$wrapper" 2>/dev/null || true
fi

# ------------------------------------------ baton claim killed with SIGKILL
# The same for a claimed item: it goes back to the queue, for another
# consumer, only once the tree is gone.
dir=$work/claim
mkdir -p "$dir"
printf 'item\n' >"$work/item"
run enqueue q/tree "$work/item"
expect "an item to claim" 0
"$baton" --socket "$sock_a" claim q/tree --kill-after 1 -- \
    sh "$work/tree.sh" "$dir" stubborn loop >/dev/null 2>"$dir/err" &
wrapper=$!
if eventually 10 recorded_all "$dir"; then
    tree_pids "$dir" >/dev/null  # in this shell: recorded for the cleanup
    pids=$(tree_pids "$dir")
    kill -KILL "$wrapper"
    wait "$wrapper" 2>/dev/null || true
    "$baton" --socket "$sock_a" claim q/tree --timeout 10 -- \
        bash -c 'source "$0"; survivors "$1" >"$1/seen_by_probe"' "$work/probe_lib.sh" "$dir" \
        >/dev/null 2>"$dir/probe.err" || true
    seen=$(cat "$dir/seen_by_probe" 2>/dev/null || echo "(not claimed: $(cat "$dir/probe.err"))")
    check "claim killed: the item came back only after the tree was gone" \
        "claim killed: the item came back while these still ran: $seen (pids $pids)" test -z "$seen"
    check "claim killed: all gone" "claim killed: still alive: $(survivors "$dir")" eventually 2 all_gone "$dir"
else
    fail "claim: CMD did not start its tree"
    kill -KILL "$wrapper" 2>/dev/null || true
fi

# ------------------------- (c) a forwarded SIGTERM that sh does not pass on
# sh dies of it while waiting for its foreground child; the child and the
# rest of the tree must not run on.
for mode in polite stubborn; do
    dir=$work/term-$mode
    mkdir -p "$dir"
    "$baton" --socket "$sock_a" run --lock "tree/term-$mode" --kill-after 1 -- \
        sh "$work/tree.sh" "$dir" "$mode" fg >/dev/null 2>"$dir/err" &
    wrapper=$!
    if ! eventually 10 test -s "$dir/foreground" -a -s "$dir/cmd"; then
        fail "$mode tree: CMD did not start its tree"
        kill -KILL "$wrapper" 2>/dev/null || true
        continue
    fi
    tree_pids "$dir" >/dev/null
    kill -TERM "$wrapper"
    got=0
    wait "$wrapper" || got=$?
    left=$(survivors "$dir")
    check "$mode tree, SIGTERM forwarded: baton run exits 143 (sh's status)" \
        "$mode tree, SIGTERM forwarded: exit $got: $(cat "$dir/err")" test "$got" = 143
    check "$mode tree, SIGTERM forwarded: all gone when baton run returns" \
        "$mode tree, SIGTERM forwarded: still alive after baton run returned: $left" test -z "$left"
    eventually 5 all_gone "$dir" || true
done

# ------------------------------------ (d) CMD exits and leaves a tree behind
for mode in polite stubborn; do
    dir=$work/exit-$mode
    mkdir -p "$dir"
    run run --lock "tree/exit-$mode" --kill-after 1 -- sh "$work/tree.sh" "$dir" "$mode" exit
    tree_pids "$dir" >/dev/null
    check "$mode tree left behind: baton run exits 0, CMD's status" \
        "$mode tree left behind: exit $rc: $(cat "$work/err")" test "$rc" = 0
    left=$(survivors "$dir")
    check "$mode tree left behind: all gone when baton run returns" \
        "$mode tree left behind: still alive after baton run returned: $left" test -z "$left"
    eventually 5 all_gone "$dir" || true
done

# CMD does not inherit the connection to the daemon, nor the guard's pipes
# or signalfd: it has the same descriptors as without baton.
"$baton" --socket "$sock_a" run --lock tree/fds -- sh -c 'ls /proc/$$/fd' >"$work/fds" 2>&1 </dev/null
sh -c 'ls /proc/$$/fd' >"$work/fds.direct" 2>&1 </dev/null
check "CMD inherits no descriptor of baton's" \
    "CMD has descriptors $(tr '\n' ' ' <"$work/fds"), not $(tr '\n' ' ' <"$work/fds.direct")" \
    cmp -s "$work/fds" "$work/fds.direct"

# Exit codes pass through the guard unchanged.
run run --lock tree/codes -- sh -c 'exit 3'
expect_quiet "CMD exits 3" 3
run run --lock tree/codes -- sh -c 'kill -KILL $$'
expect_quiet "CMD killed by SIGKILL: 137" 137
run run --lock tree/codes -- /nonexistent/command
expect_error "CMD not found: 127" 127 "No such file"

finish
