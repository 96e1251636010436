#!/usr/bin/env bash
# `baton enqueue` and `baton claim` end to end, against two real batond
# daemons sharing a temporary root: ids, exact bytes (binary, 1 MiB), ack,
# CMD's stdin and environment, nack on failure, a killed claim and a dead
# daemon giving the item back, timeouts, FIFO order, 200 items claimed by
# concurrent consumers through both daemons exactly once, hostile queues.
#
#   queue_cli.sh BATOND BATON
# shellcheck disable=SC2016  # single-quoted $VARS are for CMD to expand
# shellcheck disable=SC2317  # helpers called through check and eventually
set -euo pipefail

batond=$1
baton=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cli/cli_test_lib.sh
source "$here/cli_test_lib.sh"
sock_a=$work/a.sock
sock_b=$work/b.sock
probe=baton-queue-probe-$$

start_daemon "$sock_a" pod-a
start_daemon "$sock_b" pod-b

# files QUEUE: the item files of QUEUE in new/, cur/ and tmp/, one per line.
files() { find "$root/$1" -type f -printf '%P\n' 2>/dev/null | sort; }
# empty_queue WHAT QUEUE: QUEUE holds no item at all.
empty_queue() {
    local left
    left=$(files "$2")
    check "$1" "$1: items left in $2: $(echo "$left" | head -n 5 | tr '\n' ' ')" [ -z "$left" ]
}
in_new() { [[ -f $root/$1/new/$2 ]]; }
gone() { ! kill -0 "$1" 2>/dev/null; }

printf 'a\0b\377\n' >"$work/binary"
head -c $((1 << 20)) /dev/urandom >"$work/mib"
printf 'first\n' >"$work/first"

# --------------------------------------------------------------- enqueue
run enqueue q/basic "$work/first"
expect "enqueue a file" 0
id=$(cat "$work/out")
check "it prints an id" "enqueue printed '$id', not an item id" \
    grep -Eqx '[0-9]{20}\.[0-9a-f]{16}\.[0-9]+' "$work/out"
check "the item is in new/ under that id" "no $root/q/basic/new/$id" in_new q/basic "$id"
run enqueue q/basic - <"$work/binary"
expect "enqueue '-' (stdin)" 0
id2=$(cat "$work/out")
run enqueue q/basic < <(cat "$work/mib")
expect "enqueue with no SRC (a pipe on stdin)" 0
id3=$(cat "$work/out")
check "ids sort in enqueue order" "ids $id $id2 $id3 are not in order" \
    test "$(printf '%s\n' "$id3" "$id" "$id2" | sort | tr '\n' ' ')" = "$id $id2 $id3 "

# ----------------------------------------------- claim without a command
run claim q/basic
expect "claim without a command" 0 first
((expected)) && same "prints the first item exactly" "$work/first"
run --socket "$sock_b" claim q/basic
expect "claim a binary item through the other daemon" 0
((expected)) && same "exact bytes, a 0 byte included" "$work/binary"
"$baton" --socket "$sock_a" claim q/basic 2>"$work/err" | cmp -s - "$work/mib" && piped=0 || piped=1
check "1 MiB item claimed into a pipe, exactly" "the 1 MiB item differs through a pipe" test "$piped" = 0
empty_queue "acknowledged items are gone" q/basic
# Stdout fails: 70, one line, and the item is given back, not lost.
run enqueue q/full "$work/mib"
id=$(cat "$work/out")
rc=0
: >"$work/out"
"$baton" --socket "$sock_a" claim q/full >/dev/full 2>"$work/err" || rc=$?
expect_error "claim onto a full stdout" 70 "^baton: write error: No space left on device; item '$id' of queue 'q/full' given back$"
check "the item is back in new/" "item $id not back after the write error: $(files q/full)" \
    eventually 5 in_new q/full "$id"
run claim q/full
expect "then claimed whole" 0
((expected)) && same "with the same bytes" "$work/mib"

# ------------------------------------------------- claim with a command
run enqueue q/cmd "$work/mib"
id=$(cat "$work/out")
run claim q/cmd -- sh -c 'cat >"$0.data"; printf "%s %s" "$BATON_ITEM" "$BATON_QUEUE" >"$0.env"
    readlink /proc/self/fd/0 >"$0.stdin"' "$work/cmd"
expect "claim -- CMD" 0 ""
check "CMD read the item on stdin" "CMD read other bytes" cmp -s "$work/cmd.data" "$work/mib"
check "CMD got BATON_ITEM and BATON_QUEUE" "CMD's environment: '$(cat "$work/cmd.env")'" \
    test "$(cat "$work/cmd.env")" = "$id q/cmd"
check "CMD's stdin is the claimed item itself (no copy)" \
    "CMD's stdin was $(cat "$work/cmd.stdin")" \
    bash -c '[[ "$1" == "$2".claim-* ]]' _ "$(cat "$work/cmd.stdin")" "$root/q/cmd/cur/$id"
empty_queue "CMD's exit 0 acknowledged the item" q/cmd
# Options after QUEUE, and CMD without '--'.
printf 'x\n' | "$baton" --socket "$sock_a" enqueue q/cmd >/dev/null
run claim q/cmd --timeout 5 sh -c 'read -r line && test "$line" = x'
expect "claim QUEUE --timeout 5 CMD (no --)" 0 ""
empty_queue "acknowledged" q/cmd

# CMD fails: its own code, the item back in new/, and claimable again.
# (baton gives an item back without waiting for the daemon: poll for it.)
run enqueue q/fail "$work/binary"
id=$(cat "$work/out")
run claim q/fail -- sh -c 'cat >/dev/null; exit 3'
expect_quiet "CMD exits 3: its code, and the item is given back" 3
check "the item is back in new/" "item $id not back in new/: $(files q/fail)" \
    eventually 5 in_new q/fail "$id"
run claim q/fail -- sh -c 'kill -TERM $$'
expect_quiet "CMD killed by SIGTERM: 128+15" 143
check "the item is back in new/" "item $id not back after CMD's death" \
    eventually 5 in_new q/fail "$id"
run claim q/fail -- /nonexistent/command
expect_error "CMD not found" 127 "^baton: /nonexistent/command: No such file or directory$"
check "the item is back in new/" "item $id not back after exec failed" \
    eventually 5 in_new q/fail "$id"
run --socket "$sock_b" claim q/fail
expect "the failed item is claimed again, whole" 0
((expected)) && same "with the same bytes" "$work/binary"
empty_queue "then acknowledged" q/fail

# SIGTERM to baton claim is forwarded to CMD, which decides.
run enqueue q/term "$work/first"
id=$(cat "$work/out")
"$baton" --socket "$sock_a" claim q/term -- sh -c 'trap "exit 7" TERM; echo $$ >"$0.tmp"; mv "$0.tmp" "$0"
    while :; do sleep 0.02; done' "$work/term.pid" >"$work/term.out" 2>&1 &
claimer=$!
if eventually 10 test -s "$work/term.pid"; then
    kill -TERM "$claimer"
    got=0
    wait "$claimer" || got=$?
    check "SIGTERM forwarded: CMD's trap exits 7, and so does baton" \
        "baton claim exited $got after SIGTERM: $(cat "$work/term.out")" test "$got" = 7
    check "the item is back in new/" "item $id not back after SIGTERM" \
        eventually 5 in_new q/term "$id"
else
    fail "CMD of the SIGTERM test did not start: $(cat "$work/term.out")"
    kill -KILL "$claimer" || true
fi

# kill -9 of baton claim mid-CMD: CMD dies too, the item comes back.
run enqueue q/kill "$work/mib"
id=$(cat "$work/out")
"$baton" --socket "$sock_a" claim q/kill -- sh -c 'echo $$ >"$0.tmp"; mv "$0.tmp" "$0"; exec sleep 60' \
    "$work/kill.pid" >/dev/null 2>&1 &
claimer=$!
if eventually 10 test -s "$work/kill.pid"; then
    cmd_pid=$(cat "$work/kill.pid")
    # CMD runs under baton claim's guard process (cli/command_guard.hpp).
    parent=$(awk '{ print $4 }' "/proc/$cmd_pid/stat")
    grandparent=$(sed 's/.*) //' "/proc/$parent/stat" | cut -d' ' -f2)  # comm has a space
    check "CMD is baton claim's grandchild, under its guard" \
        "CMD's parent is $parent, whose parent is $grandparent, not $claimer" \
        test "$grandparent" = "$claimer"
    check "the item is in cur/ while CMD runs" "item $id not in cur/: $(files q/kill)" \
        compgen -G "$root/q/kill/cur/$id.claim-*"  # the claim's own name (docs/handoff.md)
    kill -KILL "$claimer"
    wait "$claimer" 2>/dev/null || true  # without bash's "Killed" line
    check "CMD died with baton claim" "CMD (pid $cmd_pid) outlived its killed baton claim" \
        eventually 5 gone "$cmd_pid"
    check "the item is back in new/" "item $id not back within 5 s: $(files q/kill)" \
        eventually 5 in_new q/kill "$id"
    run --socket "$sock_b" claim q/kill
    expect "the killed claim's item is claimed again" 0
    ((expected)) && same "whole" "$work/mib"
else
    fail "CMD of the kill test did not start"
    kill -KILL "$claimer" || true
fi

# ------------------------------------------------------------ timeouts
started=$(date +%s%N)
run claim q/empty --timeout 0.5
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
expect_error "claim --timeout 0.5 on an empty queue" 75 "^baton: no item in queue 'q/empty' within 0.5 s$"
check "gave up after $elapsed_ms ms" "claim --timeout 0.5 gave up after $elapsed_ms ms" \
    test "$elapsed_ms" -ge 500 -a "$elapsed_ms" -lt 5000
run claim q/empty -w 0 -- true
expect_error "claim -w 0 on an empty queue runs nothing" 75 "^baton: queue 'q/empty' is empty$"
# A claim that waits is served by an enqueue through the other daemon.
"$baton" --socket "$sock_a" claim q/later --timeout 10 >"$work/later.out" 2>"$work/later.err" &
waiter=$!
run --socket "$sock_b" enqueue q/later "$work/first"
got=0
wait "$waiter" || got=$?
check "a waiting claim gets an item enqueued through the other daemon" \
    "waiting claim exited $got: $(cat "$work/later.err")" cmp -s "$work/later.out" "$work/first"

# ---------------------------------------------------------------- FIFO
: >"$work/fifo.want"
for n in $(seq 10); do
    sock=$sock_a
    ((n % 2)) || sock=$sock_b
    printf 'fifo-%02d\n' "$n" | "$baton" --socket "$sock" enqueue q/fifo >/dev/null
    printf 'fifo-%02d\n' "$n" >>"$work/fifo.want"
done
: >"$work/fifo.got"
for n in $(seq 10); do
    sock=$sock_b
    ((n % 3)) || sock=$sock_a
    "$baton" --socket "$sock" claim q/fifo --timeout 5 >>"$work/fifo.got" || fail "FIFO claim $n failed"
done
check "10 items come out in enqueue order, from both daemons" \
    "FIFO order broken: $(tr '\n' ' ' <"$work/fifo.got")" cmp -s "$work/fifo.got" "$work/fifo.want"

# --------------------------------- 200 items, 8 consumers, two daemons
items=200
producer() { # SOCKET FIRST LAST
    local n
    for ((n = $2; n <= $3; n++)); do
        printf 'item-%03d\n' "$n" | "$baton" --socket "$1" enqueue q/many >/dev/null ||
            echo "enqueue of item $n failed" >>"$work/many.errors"
    done
}
producer "$sock_a" 1 $((items / 2)) &
p1=$!
producer "$sock_b" $((items / 2 + 1)) "$items" &
p2=$!
wait "$p1" "$p2"
# Consumers 1-4 run a command (history: "id content"), 5-8 print the item
# (history: content); each claims until the queue stays empty for 0.5 s.
consumer() { # INDEX SOCKET
    local got
    while :; do
        got=0
        if (($1 <= 4)); then
            "$baton" --socket "$2" claim q/many --timeout 0.5 -- \
                sh -c 'printf "%s %s\n" "$BATON_ITEM" "$(cat)" >>"$0"' "$work/hist-$1" \
                2>>"$work/many.err-$1" || got=$?
        else
            "$baton" --socket "$2" claim q/many --timeout 0.5 >>"$work/hist-$1" \
                2>>"$work/many.err-$1" || got=$?
        fi
        case $got in
        0) ;;
        75) return 0 ;;
        *) echo "consumer $1: exit $got" >>"$work/many.errors" ;;
        esac
    done
}
consumers=()
for c in 1 2 3 4 5 6 7 8; do
    sock=$sock_a
    ((c % 2)) || sock=$sock_b
    : >"$work/hist-$c"
    consumer "$c" "$sock" &
    consumers+=($!)
done
wait "${consumers[@]}"
if [[ -s $work/many.errors ]]; then
    fail "enqueue or claim failed: $(head -n 5 "$work/many.errors" | tr '\n' ' ')"
fi
seq -f 'item-%03g' "$items" >"$work/many.want"
cat "$work"/hist-* | awk '{ print $NF }' | sort >"$work/many.got"
dups=$(uniq -d "$work/many.got" | head -n 5 | tr '\n' ' ')
check "no item claimed twice by 8 consumers" "claimed twice: $dups" test -z "$dups"
check "every one of the $items items claimed" \
    "$(comm -23 "$work/many.want" "$work/many.got" | wc -l) missing, $(comm -13 "$work/many.want" "$work/many.got" | wc -l) unexpected" \
    cmp -s "$work/many.got" "$work/many.want"
ids=$(cat "$work"/hist-[1-4] | awk '{ print $1 }' | sort | uniq -d | head -n 3)
check "no id given to two commands" "ids given twice: $ids" test -z "$ids"
busy=0
for c in 1 2 3 4 5 6 7 8; do [[ -s $work/hist-$c ]] && busy=$((busy + 1)); done
check "$busy of 8 consumers got items" "only $busy consumer(s) got items" test "$busy" -ge 2
empty_queue "all $items acknowledged" q/many

# ------------------------------------------ the daemon dies mid-command
sock_c=$work/c.sock
start_daemon "$sock_c" pod-c
pid_c=$daemon_pid
run enqueue q/orphan "$work/first"
id=$(cat "$work/out")
"$baton" --socket "$sock_c" claim q/orphan --kill-after 1 -- \
    sh -c 'echo $$ >"$0.tmp"; mv "$0.tmp" "$0"; exec sleep 60' "$work/orphan.pid" \
    >/dev/null 2>"$work/orphan.err" &
claimer=$!
if eventually 10 test -s "$work/orphan.pid"; then
    cmd_pid=$(cat "$work/orphan.pid")
    kill -KILL "$pid_c"
    wait "$pid_c" 2>/dev/null || true
    got=0
    wait "$claimer" || got=$?
    check "baton claim exits 74 when its daemon dies mid-command" \
        "baton claim exited $got: $(cat "$work/orphan.err")" test "$got" = 74
    check "with one line" "$(wc -l <"$work/orphan.err") lines: $(cat "$work/orphan.err")" \
        one_line "$work/orphan.err" "baton: item '$id' of queue 'q/orphan' lost: .*; stopping sh \(pid [0-9]+\)"
    check "its command was stopped" "CMD (pid $cmd_pid) still runs" eventually 5 gone "$cmd_pid"
    run claim q/orphan --timeout 10
    expect "another daemon claims the item back" 0 first
else
    fail "CMD of the orphan test did not start"
    kill -KILL "$claimer" || true
fi

# -------------------------------------------------- killed mid-enqueue
mkfifo "$work/fifo"
"$baton" --socket "$sock_a" enqueue q/halfway "$work/fifo" >/dev/null 2>&1 &
enqueuer=$!
exec {feed}>"$work/fifo"
printf 'half an item' >&"$feed"
staged() { [[ -n $(files q/halfway) ]]; }
if eventually 10 staged; then
    kill -TERM "$enqueuer"
    wait "$enqueuer" || true
    check "an enqueue killed while copying leaves nothing" \
        "left: $(files q/halfway)" eventually 5 test -z "$(files q/halfway)"
else
    fail "enqueue from a FIFO: no item file appeared within 10 s"
    kill -TERM "$enqueuer" || true
fi
exec {feed}>&-

# ---------------------------------------------------- nothing to read
run enqueue q/missing "$work/no-such-file"
expect_error "enqueue a missing file" 66 "^baton: cannot open '.*no-such-file': No such file or directory$"
check "no queue created for it" "enqueue of a missing file created the queue" test ! -e "$root/q/missing"
run enqueue q/missing "$work"
expect_error "enqueue a directory" 66 "Is a directory"

# ------------------------------------------------------ hostile queues
# Refused with 64 and one line by enqueue and claim, nothing outside the
# root touched. Symlinks in the root lead out.
ln -s /etc "$root/etc"
ln -s .. "$root/up"
long=$(printf 'a%.0s' $(seq 2000))
hostile=(
    "../$probe" "/tmp/$probe" "a/../../$probe" "" "$long" $'ctl\x01'"$probe"
    $'new\nline' ".baton/$probe" .baton "a//b" "etc/$probe" "up/$probe" $'bad\xffutf8'
)
for queue in "${hostile[@]}"; do
    shown=$(printf '%q' "$queue")
    shown=${shown:0:60}
    run enqueue "$queue" "$work/first"
    expect "enqueue into $shown" 64
    run claim "$queue" --timeout 0 -- true
    expect "claim from $shown" 64
done
leftover=$(ls -A "$sandbox")
check "nothing beside the root" "hostile queues left beside the root: $leftover" test "$leftover" = root
check "nothing in /tmp or /etc" "$probe created outside the root" \
    test ! -e "/tmp/$probe" -a ! -e "/etc/$probe" -a ! -e "$work/$probe"

# Usage errors.
run claim
expect_usage "claim without a queue" "^baton: no queue given$"
run claim q/x --
expect_usage "claim QUEUE -- without a command" "^baton: no command after '--'$"
run claim q/x --timeout -1
expect_usage "claim --timeout -1" "^baton: invalid timeout: '-1' \(must not be negative\)$"
run enqueue q/x "$work/first" "$work/first"
expect_usage "enqueue with two files" "^baton: unexpected argument"
run enqueue
expect_usage "enqueue without a queue" "^baton: no queue given$"

finish
