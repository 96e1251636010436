#!/usr/bin/env bash
# Exit codes and messages of `baton` against fake_batond.py, a stand-in that
# can be told to lose a lock, die, queue, or fail with any error code: the
# cases a real batond cannot be steered into on demand.
#
#   exit_codes_fake_daemon.sh BATON
# shellcheck disable=SC2016  # the single-quoted $VARS are for CMD to expand
set -uo pipefail

baton=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fake="$here/fake_batond.py"
work=$(mktemp -d)
fake_pid=
trap 'stop_fake; rm -rf "$work"' EXIT
export BATON_SOCKET="$work/baton.sock"
failures=0

start_fake() {
    stop_fake
    python3 "$fake" "$BATON_SOCKET" "$@" &
    fake_pid=$!
    # A deadline, not a count of polls: python starts slowly on a busy machine.
    if ! within 30 test -S "$BATON_SOCKET"; then
        echo "fake_batond did not start within 30 s" >&2
        exit 1
    fi
}
# within SECONDS TEST...: whether TEST passes within SECONDS (polled).
within() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.02
    done
}
# The child baton run started (so its signal handling is in place).
has_child() { pgrep -P "$1" >/dev/null; }
# PID is gone or a zombie.
dead() { [[ ! $(ps -o stat= -p "$1" 2>/dev/null) =~ ^[^Z] ]]; }
stop_fake() {
    if [[ -n $fake_pid ]]; then
        kill "$fake_pid" 2>/dev/null
        wait "$fake_pid" 2>/dev/null
        fake_pid=
    fi
    rm -f "$BATON_SOCKET"
}

# expect CODE PATTERN -- ARGS...: runs baton ARGS, checks its exit code and
# that stderr matches the extended regex PATTERN (empty: stderr is empty).
expect() {
    local want=$1 pattern=$2
    shift 3
    local got
    "$baton" "$@" >"$work/out" 2>"$work/err"
    got=$?
    local ok=1
    [[ $got == "$want" ]] || ok=0
    if [[ -z $pattern ]]; then
        [[ ! -s $work/err ]] || ok=0
    else
        grep -Eq -- "$pattern" "$work/err" || ok=0
    fi
    if ((ok)); then
        echo "ok   $want  baton $*"
    else
        echo "FAIL baton $*: exit $got (want $want); stderr:" >&2
        sed 's/^/    /' "$work/err" >&2
        failures=$((failures + 1))
    fi
}

# Usage errors need no daemon.
expect 64 "^baton: no command given$" -- 
expect 64 "unknown command 'frob'" -- frob
expect 64 "^Try 'baton run --help' for more information.$" -- run --bogus
expect 64 "invalid timeout: '-1'" -- run -w -1 --lock a -- true
expect 64 "invalid timeout: '1x'" -- run -w 1x --lock a -- true
expect 64 "invalid conflict exit code: '256'" -- run -E 256 --lock a -- true
expect 64 "--lock <name> is required" -- run -- true
expect 64 "no command to run" -- run --lock a
expect 64 "invalid lock name 'a//b'" -- run --lock a//b -- true
expect 64 "^baton: no file to publish$" -- publish
expect 64 "^baton: no destination given$" -- publish -
expect 64 "unexpected argument 'c'" -- publish a b c
expect 64 "invalid mode: '0888'" -- publish --mode 0888 - x
expect 64 "invalid mode: '4755' \(permission bits only" -- publish --mode 4755 - x
expect 64 "invalid token: '-3'" -- publish --token -3 - x
expect 64 "^baton: no path given$" -- cat
expect 64 "unexpected argument 'b'" -- cat a b
expect 64 "invalid version: 'v1'" -- wait --newer-than v1 x
expect 64 "invalid timeout: 'soon'" -- wait -w soon x
expect 66 "^baton: cannot open '/nonexistent/src': No such file or directory$" -- \
    publish /nonexistent/src x
expect 66 "^baton: cannot read '/': Is a directory$" -- publish / x
expect 0 "" -- --version
expect 0 "" -- run --help
expect 0 "" -- publish --help
expect 0 "" -- cat --help
expect 0 "" -- wait --help

# No daemon.
expect 69 "cannot connect to batond at .*baton.sock" -- ping
expect 69 "cannot connect" -- run --connect-timeout 0 --lock a -- true
expect 69 "cannot connect" -- publish --connect-timeout 0 /dev/null x
expect 69 "cannot connect" -- cat --connect-timeout 0 x
expect 69 "cannot connect" -- wait --connect-timeout 0 x

start_fake --busy busy
expect 0 "" -- ping
expect 0 "" -- --socket "$BATON_SOCKET" status
expect 0 "" -- status --json --socket "$BATON_SOCKET"
expect 3 "" -- run --lock a -- sh -c 'exit 3'
expect 0 "" -- run --lock a -- sh -c '[ "$BATON_LOCK" = a ] && [ "$BATON_TOKEN" -gt 0 ]'
expect 0 "" -- run -s --lock a -- sh -c '[ "$BATON_TOKEN" = 0 ]'
expect 143 "" -- run --lock a -- sh -c 'kill -TERM $$'
expect 127 "^baton: /nonexistent: No such file or directory$" -- run --lock a -- /nonexistent
expect 126 "^baton: /etc/passwd: Permission denied$" -- run --lock a -- /etc/passwd
expect 75 "lock 'busy' is busy" -- run -n --lock busy -- true
expect 0 "lock 'busy' is busy" -- run -n -E 0 --lock busy -- true
expect 75 "timed out after 0.2 s waiting for lock 'busy'" -- run -w 0.2 --lock busy -- true
expect 9 "timed out" -- run -w 0.2 -E 9 --lock busy -- true
# Options of CMD are CMD's.
expect 0 "" -- run --lock a sh -c 'test "$1" = -n' sh -n

start_fake --error shutting_down
# The daemon's own one-line message ends the line.
expect 75 "^baton: cannot lock 'a': fake shutting_down$" -- run --lock a -- true
start_fake --error permission_denied
expect 77 "^baton: cannot lock 'a': fake permission_denied$" -- run --lock a -- true
start_fake --error io_error
expect 70 "^baton: cannot lock 'a': fake io_error$" -- run --lock a -- true
start_fake --error invalid_argument
expect 64 "Try 'baton run --help'" -- run --lock a -- true

start_fake --lose-after 0.3
expect 74 "^baton: lock 'a' lost: lock file: Input/output error; stopping sleep \(pid [0-9]+\)$" -- \
    run --lock a -- sleep 5
expect 74 "still running 0.3 s after SIGTERM; killing it" -- \
    run --kill-after 0.3 --lock a -- sh -c 'trap "" TERM; sleep 5'

start_fake --die-after 0.3
expect 74 "lock 'a' lost: the connection to batond closed" -- run --lock a -- sleep 5

# A socket this user may not reach: permission_denied once the connect
# timeout runs out, 77. Needs root to run baton as another user.
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
    start_fake
    chmod 700 "$work"
    nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    "${nobody[@]}" "$baton" ping --connect-timeout 0.2 >"$work/out" 2>"$work/err"
    got=$?
    if [[ $got == 77 ]] && grep -q "^baton: cannot connect to batond at .*: permission denied" "$work/err"; then
        echo "ok   77  socket not reachable for this user"
    else
        echo "FAIL socket not reachable for this user: exit $got (want 77); stderr:" >&2
        sed 's/^/    /' "$work/err" >&2
        failures=$((failures + 1))
    fi
else
    echo "skip socket permissions: needs root and setpriv"
fi

# Signals reach CMD; CMD dies with baton.
start_fake
"$baton" run --lock a -- sh -c 'trap "exit 7" USR1; : >"$0"; while :; do sleep 0.05; done' \
    "$work/trapped" &
pid=$!
# CMD's trap is set only once it wrote the file: a signal before would kill it.
within 30 test -e "$work/trapped" || echo "FAIL baton run's CMD did not start within 30 s" >&2
kill -USR1 "$pid"
wait "$pid"
got=$?
if [[ $got == 7 ]]; then echo "ok   SIGUSR1 forwarded"; else
    echo "FAIL SIGUSR1 not forwarded: exit $got" >&2; failures=$((failures + 1)); fi

"$baton" run --lock a -- sleep 30 &
pid=$!
within 30 has_child "$pid"
child=$(pgrep -P "$pid")
kill -KILL "$pid"
wait "$pid" 2>/dev/null
[[ -n $child ]] && within 10 dead "$child"
if [[ -z $child ]] || [[ $(ps -o stat= -p "$child" 2>/dev/null) =~ ^[^Z] ]]; then
    echo "FAIL CMD outlived baton" >&2; failures=$((failures + 1))
else
    echo "ok   CMD died with baton"
fi

exit $((failures > 0))
