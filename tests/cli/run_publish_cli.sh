#!/usr/bin/env bash
# `baton run --publish LOCAL=DEST` end to end, against two real batond
# daemons sharing a temporary root: CMD's outputs published under the lock's
# token once it exits 0, nothing when it fails or an output is missing, a
# newer holder's publish making ours stale, the lock lost (74), stdout left
# to CMD, usage errors.
#
#   run_publish_cli.sh BATOND BATON
# shellcheck disable=SC2016  # single-quoted $VARS are for CMD to expand
# shellcheck disable=SC2317  # helpers called through check
set -euo pipefail

batond=$(realpath "$1")
baton=$(realpath "$2")  # the test changes directory
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cli/cli_test_lib.sh
source "$here/cli_test_lib.sh"
sock_a=$work/a.sock
sock_b=$work/b.sock

start_daemon "$sock_a" pod-a
start_daemon "$sock_b" pod-b

# LOCAL paths are relative to the working directory baton runs in.
job=$work/job
mkdir -p "$job"
cd "$job"

# published WHAT DEST CONTENT: DEST under the root holds exactly CONTENT,
# read whole through the other daemon.
published() {
    local got
    got=$("$baton" --socket "$sock_b" cat "$2" 2>&1) || got="(cat failed: $got)"
    check "$1" "$1: '$2' holds '$got', not '$3'" test "$got" = "$3"
}
absent() { [[ ! -e $root/$1 ]]; }

# ------------------------------------------------------------- success
run run --lock job/a --publish out.txt=r/a.txt --publish sub/two.txt=r/deep/two.txt -- \
    sh -c 'mkdir -p sub && printf "one" >out.txt && printf "two" >sub/two.txt && printf "cmd says hi"'
expect "CMD exits 0: both outputs published" 0 "cmd says hi"
published "the first output is published" r/a.txt one
published "the second output is published" r/deep/two.txt two
mode=$(stat -c %a "$root/r/a.txt")
check "with mode 644" "published with mode $mode, not 644" test "$mode" = 644

# A second run replaces the versions; --publish-mode sets the permissions.
run run --lock job/a --publish-mode 0600 --publish out.txt=r/a.txt -- sh -c 'printf "one again" >out.txt'
expect "a second run publishes a new version" 0 ""
published "the new version replaced the old" r/a.txt "one again"
mode=$(stat -c %a "$root/r/a.txt")
check "--publish-mode 0600" "--publish-mode 0600 gave mode $mode" test "$mode" = 600

# The published version carries the lock's token: a publish with a lower
# token is stale afterwards (one run first, so that it is above 1).
run run --lock job/t -- true
expect "a first run of job/t" 0 ""
run run --lock job/t --publish out.txt=r/t.txt -- sh -c 'printf "%s" "$BATON_TOKEN" >token; printf fenced >out.txt'
expect "run --publish under job/t" 0 ""
token=$(cat token)
printf 'older\n' >older
run publish --token $((token - 1)) older r/t.txt
expect_error "token $((token - 1)), below the run's, is stale afterwards" 76 "stale token"
published "and the run's version stays" r/t.txt fenced

# -------------------------------------------------------------- failure
run run --lock job/b --publish out.txt=r/b.txt -- sh -c 'printf "bad" >out.txt; exit 3'
expect_quiet "CMD exits 3: its code" 3
check "nothing published when CMD fails" "r/b.txt published although CMD failed" absent r/b.txt
run run --lock job/b --publish out.txt=r/b.txt -- sh -c 'printf "bad" >out.txt; kill -TERM $$'
expect_quiet "CMD killed by SIGTERM: 143" 143
check "nothing published when CMD is killed" "r/b.txt published although CMD was killed" absent r/b.txt

# A missing output: 66, and none of the others published either.
rm -f present.txt missing.txt
run run --lock job/c --publish present.txt=r/c1.txt --publish missing.txt=r/c2.txt -- \
    sh -c 'printf "here" >present.txt'
expect_error "an output missing: 66" 66 "^baton: cannot open 'missing.txt' to publish it: No such file or directory; nothing published$"
check "nothing published when an output is missing" "r/c1.txt or r/c2.txt published" \
    test ! -e "$root/r/c1.txt" -a ! -e "$root/r/c2.txt"
run run --lock job/c --publish .=r/c3.txt -- true
expect_error "a directory as output: 66" 66 "Is a directory"
check "nothing published for a directory" "r/c3.txt published" absent r/c3.txt

# A newer holder of the lock (another run after ours lost it) published with
# a higher token first: ours is stale, 76, and DEST keeps the newer version.
run run --lock job/d --publish out.txt=r/d.txt -- sh -c 'printf "newer\n" >newer
    "$0" --socket "$1" publish --token $((BATON_TOKEN + 1000)) newer r/d.txt >/dev/null
    printf "older" >out.txt' "$baton" "$sock_b"
expect_error "a newer token published first: 76" 76 "^baton: stale token: .*'r/d.txt' not published, nothing published$"
published "DEST keeps the newer holder's version" r/d.txt newer

# The lock is released after publishing: the next run gets it at once.
run run --lock job/d -n -- true
expect "the lock is free afterwards" 0 ""

# The daemon dies after CMD did its work: the lock is lost before anything
# is published (whether baton notices while CMD runs or when it publishes),
# so 74 and nothing published.
sock_c=$work/c.sock
start_daemon "$sock_c" pod-c
pid_c=$daemon_pid
run --socket "$sock_c" run --lock job/lost --publish out.txt=r/lost.txt -- \
    sh -c 'printf "late" >out.txt; kill -KILL "$0"; exit 0' "$pid_c"
wait "$pid_c" 2>/dev/null || true
expect_error "the daemon dies before publishing: 74" 74 "lost"
check "nothing published when the lock is lost" "r/lost.txt published without a lock" absent r/lost.txt

# The lock file is removed while CMD runs: the daemon (checking its locks
# every 0.1 s) reports the lock lost, baton stops CMD with SIGTERM, and even
# though CMD then exits 0, it is 74 and nothing is published.
sock_d=$work/d.sock
start_daemon "$sock_d" pod-d --lock-check-interval 0.1
run --socket "$sock_d" run --lock job/gone --kill-after 5 --publish out.txt=r/gone.txt -- \
    sh -c 'trap "exit 0" TERM; printf "unfenced" >out.txt; rm "$0"
        while :; do sleep 0.02; done' "$root/.baton/locks/job+gone.lock"
expect_error "the lock file removed while CMD runs: 74" 74 \
    "^baton: lock 'job/gone' lost: .*; stopping sh \(pid [0-9]+\)$"
check "nothing published when the lock is lost" "r/gone.txt published without a lock" absent r/gone.txt

# A hostile DEST is refused by the daemon before anything is published.
run run --lock job/e --publish out.txt=r/e.txt --publish out.txt=../escape -- sh -c 'printf x >out.txt'
expect "a DEST outside the root: 64" 64
check "nothing published with a hostile DEST" "r/e.txt published" absent r/e.txt
check "nothing beside the root" "something escaped the root: $(ls -A "$sandbox")" \
    test "$(ls -A "$sandbox")" = root

# --------------------------------------------------------------- usage
run run --lock job/u --publish out.txt -- true
expect_usage "--publish without '='" "^baton: invalid --publish: 'out.txt'"
run run --lock job/u --publish =r/x -- true
expect_usage "--publish with an empty LOCAL" "^baton: invalid --publish"
run run --lock job/u --shared --publish out.txt=r/x -- true
expect_usage "--publish with --shared" "^baton: --publish needs an exclusive lock"

finish
