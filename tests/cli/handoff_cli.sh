#!/usr/bin/env bash
# `baton publish`, `cat` and `wait` end to end, against two real batond
# daemons sharing a temporary root: versions, exact bytes, --no-replace,
# fencing tokens, modes, a wait woken by the other daemon's publish, timeouts,
# and hostile paths (exit 64, one line, nothing touched outside the root).
#
#   handoff_cli.sh BATOND BATON
set -euo pipefail

batond=$1
baton=$2
work=$(mktemp -d) || exit 1
# The root sits alone in a sandbox: whatever escapes it lands beside it,
# where the checks at the end look.
sandbox=$work/sandbox
root=$sandbox/root
mkdir -p "$root"
sock_a=$work/a.sock
sock_b=$work/b.sock
daemon_pids=()
failures=0
# A name that must never appear outside the root.
probe=baton-handoff-probe-$$

cleanup() {
    local pid
    for pid in "${daemon_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${daemon_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"  # does not follow the symlinks planted in the root
}
trap cleanup EXIT

pass() { echo "ok   $*"; }
fail() {
    echo "FAIL $*" >&2
    failures=$((failures + 1))
}

# start_daemon SOCKET POD: a batond on the shared root, once it answers.
start_daemon() {
    "$batond" --root "$root" --socket "$1" --pod-name "$2" --node-name node \
        --log-level warn 2>>"$work/$2.log" &
    daemon_pids+=($!)
    if ! "$baton" --socket "$1" ping --connect-timeout 10 2>/dev/null; then
        echo "batond $2 did not start:" >&2
        cat "$work/$2.log" >&2
        exit 1
    fi
}

# run [--socket S] ARGS...: baton ARGS against daemon A (or S); sets rc, and
# leaves stdout in $work/out, stderr in $work/err.
run() {
    local socket=$sock_a
    if [[ $1 == --socket ]]; then
        socket=$2
        shift 2
    fi
    rc=0
    "$baton" --socket "$socket" "$@" >"$work/out" 2>"$work/err" || rc=$?
}

# expect WHAT CODE [STDOUT]: the last run exited CODE and printed STDOUT
# (when given); stderr is empty on success, else exactly one line. Sets
# expected to 1 if so, else 0 (its status stays 0 for set -e).
expect() {
    local what=$1 want=$2 ok=1 lines out
    lines=$(wc -l <"$work/err")
    out=$(head -c 200 "$work/out" | tr -d '\0')
    [[ $rc == "$want" ]] || ok=0
    if (($# > 2)); then [[ $out == "$3" ]] || ok=0; fi
    if [[ $want == 0 ]]; then
        [[ ! -s $work/err ]] || ok=0
    else
        [[ $lines == 1 ]] || ok=0
    fi
    if ((ok)); then
        pass "$want  $what"
    else
        local want_out=
        (($# > 2)) && want_out=" (want '$3')"
        fail "$what: exit $rc (want $want), stdout '$out'$want_out, stderr $lines lines:"
        head -c 2000 "$work/err" | sed 's/^/    /' >&2
    fi
    expected=$ok
}

# expect_error WHAT CODE PATTERN: expect WHAT CODE, and stderr matches the
# extended regex PATTERN.
expect_error() {
    expect "$1" "$2" ""
    ((expected)) || return 0
    grep -Eq -- "$3" "$work/err" || {
        fail "$1: stderr does not match '$3':"
        sed 's/^/    /' "$work/err" >&2
    }
}

# check WHAT WHY_NOT TEST...: runs TEST; passes WHAT or fails saying WHY_NOT.
check() {
    local what=$1 why_not=$2
    shift 2
    if "$@"; then pass "    $what"; else fail "$why_not"; fi
}

# same WHAT FILE: the last run's stdout is exactly FILE.
same() {
    if cmp -s "$work/out" "$2"; then pass "    $1"; else fail "$1: bytes differ"; fi
}

# content WHAT PATH FILE: PATH, read through baton cat and on disk, is FILE.
content() {
    run cat "$2"
    if [[ $rc == 0 ]] && cmp -s "$work/out" "$3" && cmp -s "$root/$2" "$3"; then
        pass "    $1"
    else
        fail "$1: $2 is not what it should be (cat exit $rc)"
    fi
}

start_daemon "$sock_a" pod-a
start_daemon "$sock_b" pod-b

printf 'first\n' >"$work/first"
printf 'second\n' >"$work/second"
head -c $((5 << 20)) /dev/urandom >"$work/big"
head -c $((5 << 20)) /dev/urandom >"$work/big2"
: >"$work/empty"

# Versions, from a file and from standard input.
run publish "$work/first" r/a.txt
expect "publish from a file prints version 1" 0 1
run publish - r/a.txt < <(cat "$work/second")
expect "publish from a pipe on stdin prints version 2" 0 2
run cat r/a.txt
expect "cat" 0 second
((expected)) && same "cat gives the last version exactly" "$work/second"

# Exact bytes of 5 MiB of binary, through each way of copying.
run publish "$work/big" r/big.bin
expect "publish 5 MiB from a file" 0 1
run cat r/big.bin
expect "cat 5 MiB to a file" 0
((expected)) && same "cat gives exactly the 5 MiB" "$work/big"
run publish - r/big.bin < <(cat "$work/big2")
expect "publish 5 MiB from a pipe" 0 2
{
    "$baton" --socket "$sock_a" cat r/big.bin 2>"$work/err" | cmp -s - "$work/big2"
    statuses=("${PIPESTATUS[@]}")
} || true
if [[ ${statuses[0]} == 0 && ${statuses[1]} == 0 && ! -s $work/err ]]; then
    pass "0  cat 5 MiB into a pipe gives exactly the bytes"
else
    fail "cat 5 MiB into a pipe: exit ${statuses[0]}, cmp ${statuses[1]}"
fi
run publish - r/big.bin <"$work/big"
expect "publish 5 MiB from a file on stdin" 0 3
content "5 MiB from stdin, exactly" r/big.bin "$work/big"
# procfs reports size 0, and copy_file_range copies nothing from it.
run publish /proc/self/mountinfo r/proc.txt
expect "publish a /proc file" 0 1
run cat r/proc.txt
if [[ $rc == 0 && -s $work/out ]] && grep -q " / " "$work/out"; then
    pass "0  a /proc file is published whole"
else
    fail "a /proc file: cat exit $rc, $(wc -c <"$work/out") bytes"
fi
run publish "$work/empty" r/empty
expect "publish an empty file" 0 1
content "an empty file stays empty" r/empty "$work/empty"

# Killed while copying: nothing is published, the staging file goes.
mkfifo "$work/fifo"
"$baton" --socket "$sock_a" publish - r/killed <"$work/fifo" >/dev/null 2>&1 &
publisher=$!
exec {feed}>"$work/fifo"
printf 'half a file' >&"$feed"
staged() { compgen -G "$root/r/.baton-stage.*" >/dev/null; }
for _ in $(seq 200); do
    staged && break
    sleep 0.05
done
if staged; then
    kill -TERM "$publisher"
    wait "$publisher" || true
    for _ in $(seq 200); do
        staged || break
        sleep 0.05
    done
    if staged || [[ -e $root/r/killed ]]; then
        fail "publish killed while copying left:" "$root"/r/killed "$root"/r/.baton-stage.*
    else
        pass "    publish killed while copying leaves no trace"
    fi
else
    fail "publish from a FIFO: no staging file appeared within 10 s"
    kill -TERM "$publisher"
    wait "$publisher" || true
fi
exec {feed}>&-

# --no-replace.
run publish --no-replace "$work/big" r/a.txt
expect_error "publish --no-replace onto an existing path" 73 "^baton: 'r/a.txt' already exists"
content "--no-replace left the old content" r/a.txt "$work/second"
run publish --no-replace "$work/first" r/new.txt
expect "publish --no-replace onto a new path" 0 1

# Fencing tokens.
run publish --token 5 "$work/first" r/t.txt
expect "publish --token 5" 0 1
run publish --token 3 "$work/second" r/t.txt
expect_error "publish --token 3 after 5" 76 "^baton: stale token: .*'r/t.txt' not published$"
content "a stale token left the content" r/t.txt "$work/first"
run publish --token 5 "$work/second" r/t.txt
expect "publish --token 5 again" 0 2

# Modes.
run publish --mode 0600 "$work/first" r/m600.txt
expect "publish --mode 0600" 0 1
mode=$(stat -c %a "$root/r/m600.txt")
check "mode 600" "--mode 0600 gave mode $mode" [ "$mode" = 600 ]
run publish "$work/first" r/m644.txt
expect "publish with the default mode" 0 1
mode=$(stat -c %a "$root/r/m644.txt")
check "mode 644" "the default mode is $mode, not 644" [ "$mode" = 644 ]

# Waits.
run wait r/a.txt
expect "wait for an existing path" 0 2
run wait --newer-than 1 r/a.txt
expect "wait --newer-than an older version" 0 2
run publish "$work/first" r/w.txt
expect "publish r/w.txt through daemon A" 0 1
"$baton" --socket "$sock_a" wait r/w.txt --newer-than 1 >"$work/wait.out" 2>"$work/wait.err" &
waiter=$!
# Time for the request to reach the daemon (coverage only: were it late,
# the publish below would already be there and it would print 2 all the same).
sleep 0.3
if kill -0 "$waiter" 2>/dev/null; then
    pass "    wait --newer-than 1 blocks while the version is 1"
else
    fail "wait --newer-than 1 returned while the version was 1: $(cat "$work/wait.out" "$work/wait.err")"
fi
run --socket "$sock_b" publish "$work/second" r/w.txt
expect "publish r/w.txt through daemon B" 0 2
for _ in $(seq 200); do
    kill -0 "$waiter" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$waiter" 2>/dev/null; then
    fail "wait --newer-than 1 still waits 10 s after daemon B published version 2"
    kill "$waiter" || true
fi
waited=0
wait "$waiter" || waited=$?
if [[ $waited == 0 && $(cat "$work/wait.out") == 2 && ! -s $work/wait.err ]]; then
    pass "0  wait --newer-than 1 woke for daemon B's publish and printed 2"
else
    fail "wait --newer-than 1: exit $waited, printed '$(cat "$work/wait.out")': $(cat "$work/wait.err")"
fi
started=$(date +%s%N)
run wait --timeout 0.3 r/missing
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
expect_error "wait --timeout 0.3 for a missing path" 75 "timed out after 0.3 s waiting for 'r/missing' to exist"
check "waited $elapsed_ms ms" "wait --timeout 0.3 gave up after $elapsed_ms ms" \
    [ "$elapsed_ms" -ge 300 ]

# Nothing to read.
run cat r/missing
expect_error "cat a missing path" 66 "^baton: cannot read 'r/missing': "
run cat r
expect_error "cat a directory" 64 "not a regular file"
run publish "$work/no-such-file" fresh/x
expect_error "publish a missing file" 66 "^baton: cannot open '.*no-such-file': No such file or directory$"
check "nothing created for it" "publish of a missing file created $root/fresh" \
    [ ! -e "$root/fresh" ]

# Hostile paths: refused with 64 and one line by publish, cat and wait, and
# nothing read or written outside the root. Symlinks inside the root lead
# out: to /etc, to /etc/passwd, to the sandbox, and from a subdirectory.
plant_links() {
    rm -rf "${root:?}/etc" "${root:?}/pw" "${root:?}/up" "${root:?}/d"
    mkdir -p "$root/d"
    ln -s /etc "$root/etc"
    ln -s /etc/passwd "$root/pw"
    ln -s .. "$root/up"
    ln -s /etc "$root/d/out"
}
links_intact() {
    [ -L "$root/etc" ] && [ -L "$root/pw" ] && [ -L "$root/up" ] && [ -L "$root/d/out" ]
}
passwd_sum=$(sha256sum </etc/passwd)
long=$(printf 'a%.0s' $(seq 2000))
hostile=(
    "../$probe" "/etc/$probe" /etc/passwd "a/../../$probe" "" "$long"
    $'ctl\x01'"$probe" $'new\nline' $'tab\there' $'del\x7f'
    ".baton/locks/$probe" .baton ".baton-stage.$probe"
    "etc/$probe" etc/passwd "up/$probe" "d/out/$probe" "d/out/passwd"
    # The symlink itself, last component of the path.
    etc pw up
)
for path in "${hostile[@]}"; do
    shown=$(printf '%q' "$path")
    shown=${shown:0:60}
    plant_links
    run cat "$path"
    expect "cat $shown" 64
    run wait --timeout 2 "$path"
    expect "wait $shown" 64
    plant_links
    run publish "$work/first" "$path"
    expect "publish $shown" 64
    links_intact || fail "publish $shown replaced a symlink of the root"
done

leftover=$(ls -A "$sandbox")
check "nothing beside the root" "hostile paths left beside the root: $leftover" \
    [ "$leftover" = root ]
check "nothing in /etc" "/etc/$probe was created" [ ! -e "/etc/$probe" ]
check "/etc/passwd untouched" "/etc/passwd changed" \
    [ "$(sha256sum </etc/passwd)" = "$passwd_sum" ]
stages=$(find "$root" -path "$root/.baton" -prune -o -name '.baton*' -print)
check "no staging file left" "staging files left: $stages" [ -z "$stages" ]

if ((failures > 0)); then
    echo "$failures check(s) failed; the daemons said:" >&2
    tail -n 20 "$work"/pod-*.log >&2
    exit 1
fi
