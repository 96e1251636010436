#!/usr/bin/env bash
# Job control through `baton run` on a real terminal (tmux): CMD runs in a
# process group of its own, so baton must hand it the terminal and mirror
# its stops as sudo does. Ctrl-C reaches CMD (130); CMD reads the terminal;
# Ctrl-Z stops CMD and baton and gives the shell back, `fg` continues both;
# started with `&`, CMD stops on reading the terminal and `fg` hands it
# over. Skipped (77) without tmux.
#
#   job_control_cli.sh BATOND BATON
# shellcheck disable=SC2016  # single-quoted $VARS are for the inner shell
# shellcheck disable=SC2317  # helpers called through check
set -euo pipefail

command -v tmux >/dev/null || { echo "tmux not installed: skipped"; exit 77; }
batond=$(realpath "$1")
baton=$(realpath "$2")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cli/cli_test_lib.sh
source "$here/cli_test_lib.sh"
sock_a=$work/a.sock
start_daemon "$sock_a" pod-a

session=baton-jc-$$
export TMUX_TMPDIR=$work  # a tmux server of our own, gone with $work
cleanup_tmux() {
    tmux kill-server 2>/dev/null || true
    cleanup
}
trap cleanup_tmux EXIT
tmux new-session -d -s "$session" -x 200 -y 50 "env -i PATH=$PATH HOME=$work TERM=xterm PS1='$ ' bash --norc --noprofile -i"
type_line() { tmux send-keys -t "$session" -l "$1"; tmux send-keys -t "$session" Enter; }
key() { tmux send-keys -t "$session" "$1"; }
type_line "B='$baton --socket $sock_a'; W='$work'"

# state PIDFILE: the state letter of the process whose pid PIDFILE holds.
state() {
    local stat
    stat=$(cat "/proc/$(cat "$1")/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    echo "${stat%% *}"
}
stopped() { [[ $(state "$1") == T ]]; }
sleeping() { [[ $(state "$1") == [SR] ]]; }
holds() { [[ -s $1 && $(cat "$1") == "$2" ]]; }

# Ctrl-C: CMD has the terminal, gets SIGINT, baton exits 130.
type_line '$B run --lock jc -- sh -c '\''echo $$ >"$0/c.pid"; exec sleep 100'\'' "$W"; echo $? >"$W/c.rc"'
if eventually 10 test -s "$work/c.pid"; then
    eventually 5 sleeping "$work/c.pid" || true
    key C-c
    check "Ctrl-C reaches CMD: 130" "Ctrl-C: baton run exited $(cat "$work/c.rc" 2>/dev/null || echo '(not)')" \
        eventually 10 holds "$work/c.rc" 130
else
    fail "Ctrl-C: CMD did not start"
fi

# CMD reads the terminal (it is CMD's foreground group, no SIGTTIN).
type_line '$B run --lock jc -- sh -c '\''echo ready >"$0/r.ready"; read x; echo "$x" >"$0/r.got"'\'' "$W"; echo $? >"$W/r.rc"'
if eventually 10 test -s "$work/r.ready"; then
    type_line "typed-in"
    check "CMD reads the terminal" "CMD read '$(cat "$work/r.got" 2>/dev/null)'" eventually 10 holds "$work/r.got" typed-in
    check "and baton run exits 0" "baton run exited $(cat "$work/r.rc" 2>/dev/null)" eventually 10 holds "$work/r.rc" 0
else
    fail "read: CMD did not start"
fi

# Ctrl-Z stops CMD, then baton: the shell reports the job stopped; fg
# continues both and CMD finishes.
# (No "; echo $?" on that line: bash runs the rest of a list at once when
# a job in it stops; the status comes from fg.)
type_line '$B run --lock jc -- sh -c '\''echo $$ >"$0/z.pid"; sleep 2; echo done >"$0/z.done"'\'' "$W"'
if eventually 10 test -s "$work/z.pid"; then
    key C-z
    check "Ctrl-Z stops CMD" "CMD is in state $(state "$work/z.pid")" eventually 10 stopped "$work/z.pid"
    type_line 'jobs -l >"$W/z.jobs"'
    check "and the shell has the job as stopped" "jobs: $(cat "$work/z.jobs" 2>/dev/null)" \
        eventually 10 grep -q Stopped "$work/z.jobs"
    check "CMD has not finished while stopped" "CMD finished while stopped" test ! -e "$work/z.done"
    type_line 'fg; echo $? >"$W/z.rc"'
    check "fg continues CMD, which finishes" "CMD did not finish after fg" eventually 15 test -s "$work/z.done"
    check "and baton run exits 0" "baton run exited $(cat "$work/z.rc" 2>/dev/null)" eventually 10 holds "$work/z.rc" 0
else
    fail "Ctrl-Z: CMD did not start"
fi

# Started in the background, CMD stops on reading the terminal (SIGTTIN),
# baton with it; fg hands CMD the terminal.
type_line '$B run --lock jc -- sh -c '\''echo $$ >"$0/b.pid"; read x; echo "$x" >"$0/b.got"'\'' "$W" &'
if eventually 10 test -s "$work/b.pid"; then
    check "in the background, CMD stops on reading the terminal" "CMD is in state $(state "$work/b.pid")" \
        eventually 10 stopped "$work/b.pid"
    type_line fg
    eventually 10 sleeping "$work/b.pid" || true
    type_line "from-fg"
    check "after fg, CMD reads the terminal" "CMD read '$(cat "$work/b.got" 2>/dev/null)'" \
        eventually 10 holds "$work/b.got" from-fg
else
    fail "background: CMD did not start"
fi

if ((failures > 0)); then
    echo "the terminal:" >&2
    tmux capture-pane -p -t "$session" | grep -v '^$' >&2 || true
fi
finish
