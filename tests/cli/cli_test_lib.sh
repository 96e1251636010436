# shellcheck shell=bash
# shellcheck disable=SC2154  # batond, baton and sock_a come from the test
# What the CLI's shell tests against real batond daemons share: a temporary
# root alone in a sandbox (whatever escapes it lands beside it, where a test
# can look), daemons started on it and stopped on exit, and checks that
# count failures instead of stopping at the first. Source it with $batond
# and $baton set, then call finish last.

work=$(mktemp -d)
sandbox=$work/sandbox
root=$sandbox/root
mkdir -p "$root"
daemon_pids=()
failures=0
rc=0
expected=0

cleanup() {
    local pid
    for pid in "${daemon_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${daemon_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"  # does not follow symlinks planted in the root
}
trap cleanup EXIT

pass() { echo "ok   $*"; }
fail() {
    echo "FAIL $*" >&2
    failures=$((failures + 1))
}

# start_daemon SOCKET POD [BATOND_FLAGS...]: a batond on the shared root, once
# it answers; its pid is left in daemon_pid.
start_daemon() {
    local socket=$1 pod=$2
    shift 2
    "$batond" --root "$root" --socket "$socket" --pod-name "$pod" --node-name node \
        --log-level warn "$@" 2>>"$work/$pod.log" &
    daemon_pid=$!
    daemon_pids+=("$daemon_pid")
    if ! "$baton" --socket "$socket" ping --connect-timeout 10 2>/dev/null; then
        echo "batond $pod did not start:" >&2
        cat "$work/$pod.log" >&2
        exit 1
    fi
}

# run [--socket S] ARGS...: baton ARGS against $sock_a (or S); sets rc, and
# leaves stdout in $work/out, stderr in $work/err. Stdin is the caller's.
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
        expected=0
    }
}

# expect_quiet WHAT CODE: the last run exited CODE (CMD's own status, which
# baton passes on without a word) and wrote nothing on stderr.
expect_quiet() {
    if [[ $rc == "$2" && ! -s $work/err ]]; then
        pass "$2  $1"
    else
        fail "$1: exit $rc (want $2), stderr:"
        head -c 2000 "$work/err" | sed 's/^/    /' >&2
    fi
}

# expect_usage WHAT PATTERN: the last run was refused as a usage error: exit
# 64, a first line matching PATTERN, then the line pointing to --help.
expect_usage() {
    if [[ $rc == 64 && $(wc -l <"$work/err") == 2 ]] &&
        head -n 1 "$work/err" | grep -Eq -- "$2" &&
        tail -n 1 "$work/err" | grep -Eq "^Try 'baton [a-z]+ --help' for more information.$"; then
        pass "64  $1"
    else
        fail "$1: exit $rc (want 64), stderr:"
        head -c 2000 "$work/err" | sed 's/^/    /' >&2
    fi
}

# one_line FILE PATTERN: FILE is exactly one line, matching PATTERN.
one_line() {
    [[ $(wc -l <"$1") == 1 ]] && grep -Eqx -- "$2" "$1"
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

# eventually SECONDS TEST...: whether TEST passes within SECONDS (polled).
eventually() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.02
    done
}

# finish: the exit status of the test, with the daemons' last words on failure.
finish() {
    if ((failures > 0)); then
        echo "$failures check(s) failed; the daemons said:" >&2
        tail -n 20 "$work"/*.log >&2
        exit 1
    fi
    exit 0
}
