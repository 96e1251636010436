#!/usr/bin/env bash
# demo.sh: see baton work in a minute, on one machine, no Kubernetes needed.
#
#   scripts/demo.sh [--no-deps] [--no-build] [--build-dir DIR]
#                   [--batond PATH --baton PATH]
#
# Installs the build dependencies, builds batond and baton (Release, in
# build-release/), then plays two "pods" sharing one "volume":
#   - a temp directory stands in for the ReadWriteMany volume;
#   - pod-a and pod-b each run their own batond sidecar (own socket, same root);
#   - a job in each pod appends to report.txt on the volume a few times under
#     the lock 'report': they take turns, and the fencing token grows;
#   - `baton status` shows who holds the lock, from either pod;
#   - kill -9 of the job holding the lock frees it at once;
#   - a writer in pod-a publishes report.csv while a reader in pod-b waits for
#     each new version and reads it whole;
#   - a queue: pod-a enqueues work, consumers in both pods claim it; a failed
#     item comes back; every item is done exactly once.
# With --no-build, the binaries come from DIR/bin/ or else DIR/daemon/ and
# DIR/cli/ (a test build); --batond/--baton name them (and imply --no-build).
# Everything (daemons, temp files) is cleaned up on exit, even on Ctrl-C.
# The demo checks what it shows and exits 1 if baton misbehaved.
# Set DEMO_PACE=0 to skip the pauses meant for human readers.
set -euo pipefail

usage() {
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

deps=1
build=1
build_dir="build-release"
batond=""
baton=""
while (($#)); do
    case "$1" in
    --no-deps) deps=0; shift ;;
    --no-build) build=0; shift ;;
    --build-dir) [[ $# -ge 2 ]] || usage; build_dir=$2; shift 2 ;;
    --batond) [[ $# -ge 2 ]] || usage; batond=$2; build=0; shift 2 ;;
    --baton) [[ $# -ge 2 ]] || usage; baton=$2; build=0; shift 2 ;;
    -h | --help) usage ;;
    *) printf 'demo.sh: unknown argument %s\n' "$1" >&2; usage ;;
    esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"
pace=${DEMO_PACE:-1}

# ------------------------------------------------------------- presentation
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    bold=$'\e[1m' dim=$'\e[2m' reset=$'\e[0m'
    declare -A color=([pod-a]=$'\e[36m' [pod-b]=$'\e[35m' [demo]=$'\e[1m')
else
    bold='' dim='' reset=''
    declare -A color=([pod-a]='' [pod-b]='' [demo]='')
fi
t_start=$EPOCHREALTIME
# say WHO TEXT: one narrated line, with the time since the demo started.
say() {
    local who=$1
    shift
    printf '%s[%5ss]%s %s%s%s\n' "$dim" \
        "$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')" \
        "$reset" "${color[$who]:-}" "$*" "$reset"
}
section() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$reset"; }
pause() { sleep "$(awk -v p="$pace" -v s="$1" 'BEGIN { print p * s }')"; }
# show POD ARGS...: print `POD$ baton ARGS`, then run it in POD, indented.
show() {
    local pod=$1
    shift
    printf '%s%s$ baton %s%s\n' "${color[$pod]:-}" "$pod" "$*" "$reset"
    inpod "$pod" "$baton" "$@" 2>&1 | sed 's/^/    /'
}

# -------------------------------------------------------------------- build
if ((deps)); then
    section "installing build dependencies (once)"
    scripts/install-deps.sh
fi
[[ "$build_dir" == /* ]] || build_dir="$repo/$build_dir"
bin="$build_dir/bin"
if ((build)); then
    section "building batond and baton (Release) in $build_dir/"
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
        -DBATON_BUILD_TESTS=OFF -DBATON_BUILD_BENCH=OFF -DBATON_WARNINGS_AS_ERRORS=OFF \
        -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$bin" >/dev/null
    cmake --build "$build_dir" -j2 --target batond baton_cli
fi
# find_binary NAME TEST_BUILD_SUBDIR: DIR/bin/NAME, else DIR/SUBDIR/NAME.
find_binary() {
    local b
    for b in "$bin/$1" "$build_dir/$2/$1"; do
        if [[ -x "$b" ]]; then
            printf '%s\n' "$b"
            return 0
        fi
    done
    echo "demo.sh: $bin/$1 is missing (build without --no-build first)" >&2
    exit 1
}
: "${batond:=$(find_binary batond daemon)}"
: "${baton:=$(find_binary baton cli)}"
for b in "$batond" "$baton"; do
    [[ -x "$b" ]] || { echo "demo.sh: $b is not an executable" >&2; exit 1; }
done

# ------------------------------------------------------------------- set-up
tmp=$(mktemp -d /tmp/baton-demo.XXXXXX)
shared="$tmp/shared-volume"
declare -A sock=([pod-a]="$tmp/pod-a/run/baton.sock" [pod-b]="$tmp/pod-b/run/baton.sock")
declare -A daemon_pid=()
bg_pids=()
stray_cmd=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    for pid in "${bg_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    if [[ -n "$stray_cmd" ]]; then kill -KILL "$stray_cmd" 2>/dev/null; fi
    for pod in "${!daemon_pid[@]}"; do kill -TERM "${daemon_pid[$pod]}" 2>/dev/null; done
    for pod in "${!daemon_pid[@]}"; do wait "${daemon_pid[$pod]}" 2>/dev/null; done
    if ((rc != 0)); then
        for pod in pod-a pod-b; do
            [[ -s "$tmp/$pod/batond.log" ]] || continue
            printf -- '--- last lines of %s batond log\n' "$pod" >&2
            tail -n 15 "$tmp/$pod/batond.log" >&2
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# inpod POD CMD...: run a baton command in POD (with POD's socket).
inpod() {
    local pod=$1
    shift
    BATON_SOCKET=${sock[$pod]} "$@"
}

section "two pods share one volume"
t_start=$EPOCHREALTIME # the clock of the narration starts now, after the build
mkdir -p "$shared" "$tmp/pod-a/run" "$tmp/pod-b/run"
say demo "The shared volume (ReadWriteMany in a cluster) is $shared"
for pod in pod-a pod-b; do
    "$batond" --root "$shared" --socket "${sock[$pod]}" --pod-name "$pod" --node-name "node-${pod#pod-}" \
        --log-level info >"$tmp/$pod/batond.log" 2>&1 </dev/null &
    daemon_pid[$pod]=$!
    say "$pod" "$pod starts its batond sidecar: --root $shared --socket ${sock[$pod]}"
done
for pod in pod-a pod-b; do
    if ! inpod "$pod" "$baton" ping --connect-timeout 5; then
        echo "demo.sh: $pod's batond did not answer within 5 s" >&2
        exit 1
    fi
    say "$pod" "$pod: 'baton ping' answers: the sidecar is ready (this is the startupProbe)"
done
pause 1

# ============================================================== PART 1: locks
section "part 1: two jobs take turns with the lock 'report'"

# holder_of POD LOCK: "POD TOKEN" of the current exclusive holder, as POD's
# daemon reports it (from any pod), or nothing.
holder_of() {
    inpod "$1" "$baton" status 2>/dev/null |
        awk -v lock="$2" '$1 == lock && $2 == "exclusive" { split($3, h, "/"); print h[1], $4; exit }' || true
}

# The job's command, run by `baton run` while it holds the lock.
# shellcheck disable=SC2016 # expanded by sh -c
job_cmd='echo "$POD round $ROUND, token $BATON_TOKEN" >>"$SHARED/report.txt"
echo "$POD'"'"'s job holds '"'"'report'"'"' (token $BATON_TOKEN): appended round $ROUND to report.txt"
sleep "$HOLD"'

# job POD ROUNDS: the job of one pod.
job() {
    local pod=$1 rounds=$2 r holder
    for ((r = 1; r <= rounds; r++)); do
        holder=$(holder_of "$pod" report)
        if [[ -n "$holder" ]]; then
            say "$pod" "$pod's job waits while ${holder% *} holds 'report' (token ${holder#* })..."
        else
            say "$pod" "$pod's job asks for 'report' (round $r)"
        fi
        # The command's output is narrated line by line as it comes.
        POD=$pod ROUND=$r SHARED=$shared HOLD=$(awk -v p="$pace" 'BEGIN { print 1.2 * p + 0.2 }') \
            inpod "$pod" "$baton" run --lock report -- sh -c "$job_cmd" |
            while IFS= read -r line; do say "$pod" "$line"; done
        say "$pod" "$pod's job is done with round $r: 'baton run' released 'report'"
        sleep 0.3
    done
}

say demo "Each job runs:  baton run --lock report -- sh -c 'echo ... >>report.txt; sleep 1'"
say demo "Only one of them can be inside at a time, whichever pod it runs in."
job pod-a 3 &
job_a=$!
sleep 0.4
job pod-b 3 &
job_b=$!
bg_pids+=("$job_a" "$job_b")
wait "$job_a" "$job_b"

section "report.txt on the shared volume"
sed 's/^/    /' "$shared/report.txt"
if ! awk 'NF != 5 || $5 + 0 <= last { bad = 1 } { last = $5 + 0 } END { exit bad || NR != 6 }' "$shared/report.txt"; then
    echo "demo.sh: expected six whole lines with growing tokens in report.txt" >&2
    exit 1
fi
say demo "Six whole lines, in lock order. The fencing token (BATON_TOKEN) grew on every turn,"
say demo "across both pods (it jumps when the lock moves to another pod: each sidecar reserves"
say demo "a block of tokens on the volume). A writer can stamp its output with it; a stale"
say demo "writer (one that lost its lock) is recognisable by its smaller token."
pause 2

section "part 1b: who holds the lock? and kill -9 of the holder"
# (A plain command, not through inpod, so that $! is baton's own pid.)
# shellcheck disable=SC2016 # expanded by sh -c
BATON_SOCKET=${sock[pod-b]} "$baton" run --lock report -- sh -c 'echo $$ >"$0"; exec sleep 600' "$tmp/stuck.pid" \
    >"$tmp/stuck.out" 2>&1 &
stuck_run=$!
disown "$stuck_run" # no "Killed" notice from bash when we kill it below
bg_pids+=("$stuck_run")
for _ in $(seq 100); do [[ -s "$tmp/stuck.pid" ]] && break; sleep 0.05; done
[[ -s "$tmp/stuck.pid" ]] || { echo "demo.sh: pod-b's job did not get the lock" >&2; exit 1; }
stray_cmd=$(<"$tmp/stuck.pid")
say pod-b "pod-b starts a job that takes 'report' and hangs (its command: sleep 600, pid $stray_cmd)"
say demo "Ask either sidecar who holds 'report':"
show pod-b status
show pod-a status
pause 1

# shellcheck disable=SC2016 # expanded by sh -c
BATON_SOCKET=${sock[pod-a]} "$baton" run --lock report -- sh -c 'echo "$BATON_TOKEN" >"$0"' "$tmp/late.token" \
    >"$tmp/late.out" 2>&1 &
late_run=$!
bg_pids+=("$late_run")
sleep 0.5
say pod-a "pod-a's next job waits for 'report'; pod-a's sidecar shows it queued:"
show pod-a status
pause 1

say demo "Now pod-b's job is killed hard (kill -9 $stuck_run, as the OOM killer would): no clean-up code runs."
t_kill=$EPOCHREALTIME
kill -KILL "$stuck_run"
while [[ ! -s "$tmp/late.token" ]]; do
    if ! kill -0 "$late_run" 2>/dev/null && [[ ! -s "$tmp/late.token" ]]; then
        echo "demo.sh: pod-a's waiting job failed: $(cat "$tmp/late.out")" >&2
        exit 1
    fi
    sleep 0.01
done
ms=$(awk -v a="$t_kill" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
wait "$late_run" || true
say pod-a "pod-a's job got 'report' ${ms} ms after the kill (token $(<"$tmp/late.token")): the lock lived" \
    "only as long as the holder's connection. No stale lock file, no TTL to wait out."
sleep 0.2
if [[ -d "/proc/$stray_cmd" && "$(awk '{ print $3 }' "/proc/$stray_cmd/stat" 2>/dev/null)" != Z ]]; then
    say demo "NOTE: the killed job's command (pid $stray_cmd) is still running."
else
    say demo "The killed job's command (sleep 600) died with it: it never runs without the lock."
    stray_cmd=""
fi
pause 1

# ====================================================== PART 2: file handoff
section "part 2: pod-a's writer publishes report.csv, pod-b's reader waits for it"

reports=3
# report_check FILE: "R ROWS" if FILE is a whole report (header, ROWS rows and
# the footer "# report R of N: ROWS rows"), else nothing and status 1.
report_check() {
    awk 'NR == 1 { ok = ($0 == "id,region,amount"); next }
         /^# report / { footer = $0; r = $3; want = $6; next }
         { rows++ }
         END {
             if (!ok || footer !~ /^# report [0-9]+ of [0-9]+: [0-9]+ rows$/ || rows != want) exit 1
             print r, rows
         }' "$1"
}

# The writer job of pod-a: builds each report in its own scratch directory
# (slowly, as a real job would), then publishes it in one step.
writer_job() {
    local r rows chunk v scratch="$tmp/pod-a/scratch/report.csv"
    mkdir -p "$(dirname "$scratch")"
    for ((r = 1; r <= reports; r++)); do
        rows=$((r * 4000))
        say pod-a "pod-a's writer builds report $r ($rows rows) in its own scratch file, a chunk at a time..."
        echo "id,region,amount" >"$scratch"
        for ((chunk = 0; chunk < 4; chunk++)); do
            awk -v from=$((chunk * rows / 4 + 1)) -v to=$(((chunk + 1) * rows / 4)) 'BEGIN {
                split("north south east west", region)
                for (i = from; i <= to; i++) printf "%d,%s,%d\n", i, region[i % 4 + 1], (i * 7919) % 1000
            }' >>"$scratch"
            pause 0.3
        done
        echo "# report $r of $reports: $rows rows" >>"$scratch"
        v=$(inpod pod-a "$baton" publish "$scratch" report.csv)
        say pod-a "pod-a$ baton publish scratch/report.csv report.csv  ->  version $v: on the volume, all at once"
        # Even at DEMO_PACE=0, leave pod-b's reader time to read each version.
        sleep "$(awk -v p="$pace" 'BEGIN { print 1.5 * p + 0.3 }')"
    done
}

# The reader job of pod-b: waits for each new version and reads it whole.
reader_job() {
    local v seen got copy="$tmp/pod-b/report.csv"
    say pod-b "pod-b$ baton wait report.csv   (it does not exist yet: the reader blocks)"
    v=$(inpod pod-b "$baton" wait report.csv --timeout 30)
    while :; do
        inpod pod-b "$baton" cat report.csv >"$copy"
        if ! got=$(report_check "$copy"); then
            say pod-b "pod-b's reader got a HALF report (version $v): $(wc -l <"$copy") lines"
            : >"$tmp/half-report"
            return 1
        fi
        say pod-b "pod-b's reader woke for version $v; baton cat gave report ${got% *}: ${got#* } rows + footer, whole"
        ((${got% *} < reports)) || break
        say pod-b "pod-b$ baton wait report.csv --newer-than $v"
        seen=$v
        v=$(inpod pod-b "$baton" wait report.csv --newer-than "$seen" --timeout 30)
    done
}

# A dashboard in pod-b that reads report.csv straight off the volume with a
# plain cat (no baton, as nginx would), as fast as it can.
dashboard() {
    local reads=0 whole=0 copy="$tmp/pod-b/dashboard.csv"
    while [[ ! -e "$tmp/writer-done" ]]; do
        cat "$shared/report.csv" >"$copy" 2>/dev/null || continue
        reads=$((reads + 1))
        if report_check "$copy" >/dev/null; then whole=$((whole + 1)); fi
    done
    echo "$reads $whole" >"$tmp/dashboard.counts"
}

say demo "The reader does not poll the file nor guess a schedule: 'baton wait' returns when a newer"
say demo "version exists, from whichever pod published it (across nodes the sidecar polls the volume)."
reader_job &
reader=$!
bg_pids+=("$reader")
sleep 0.3 # (only so that the narration shows the reader waiting first)
dashboard &
dash=$!
bg_pids+=("$dash")
writer_job
: >"$tmp/writer-done"
wait "$dash"
if ! wait "$reader" || [[ -e "$tmp/half-report" ]]; then
    echo "demo.sh: pod-b's reader failed (above)" >&2
    exit 1
fi
read -r dash_reads dash_whole <"$tmp/dashboard.counts"
say pod-b "Meanwhile pod-b's dashboard read report.csv with plain cat, no baton, $dash_reads times:" \
    "$dash_whole whole reports, $((dash_reads - dash_whole)) half ones."
if ((dash_whole != dash_reads)); then
    echo "demo.sh: a plain reader saw a half-written report.csv" >&2
    exit 1
fi
say demo "publish writes a hidden file beside report.csv and renames it over the old one: every reader,"
say demo "with baton or without, sees the old version or the new one, never a mix. The version grows by"
say demo "one with each publish, in any pod."
pause 2

# ========================================================= PART 2b: a queue
section "part 2b: a queue between two jobs, each item done exactly once"
say demo "pod-a's producer enqueues work; consumers in pod-b and pod-a claim it."
for photo in photo-1.jpg photo-2.jpg photo-3.jpg photo-4.jpg photo-5.jpg photo-6.jpg; do
    id=$(echo "$photo" | inpod pod-a "$baton" enqueue queues/thumbnails -)
    say pod-a "pod-a$ echo $photo | baton enqueue queues/thumbnails -   ->  item $id"
done
pause 1

# The consumer's command: the item on stdin, its id in BATON_ITEM. It fails
# photo-3.jpg the first time it is seen (exit 1: baton claim gives it back).
# shellcheck disable=SC2016 # expanded by sh -c
consume_cmd='photo=$(cat)
if [ "$photo" = photo-3.jpg ] && mkdir "$MARKS/photo-3" 2>/dev/null; then
    echo "$POD'"'"'s consumer fails on $photo: exit 1, so the item goes back to the queue"
    exit 1
fi
echo "$POD'"'"'s consumer claimed $photo: making its thumbnail"
sleep "$WORK"
echo "$photo $POD" >>"$SHARED/thumbnails.done"'

# consumer POD: claims items until the queue stays empty for a second.
consumer() {
    local pod=$1 rc
    while :; do
        rc=0
        POD=$pod MARKS=$tmp SHARED=$shared WORK=$(awk -v p="$pace" 'BEGIN { print 0.8 * p + 0.1 }') \
            inpod "$pod" "$baton" claim queues/thumbnails --timeout 1 -- sh -c "$consume_cmd" |
            while IFS= read -r line; do say "$pod" "$line"; done || rc=$?
        case $rc in
        0 | 1) ;;
        75)
            say "$pod" "$pod's consumer: nothing left (baton claim timed out: exit 75)"
            return 0
            ;;
        *)
            echo "demo.sh: $pod's baton claim exited $rc" >&2
            return 1
            ;;
        esac
    done
}

say demo "Each consumer runs:  baton claim queues/thumbnails --timeout 1 -- make-thumbnail"
say demo "(exit 0 acknowledges the item; any other exit, or death, gives it back)"
consumer pod-b &
consumer_b=$!
sleep 0.05 # (pod-b first, only for the narration)
consumer pod-a &
consumer_a=$!
bg_pids+=("$consumer_a" "$consumer_b")
wait "$consumer_a" || exit 1
wait "$consumer_b" || exit 1

section "thumbnails.done on the shared volume"
sed 's/^/    /' "$shared/thumbnails.done"
done_items=$(wc -l <"$shared/thumbnails.done")
twice=$(awk '{ print $1 }' "$shared/thumbnails.done" | sort | uniq -d | tr '\n' ' ')
redone_by=$(awk '$1 == "photo-3.jpg" { print $2 }' "$shared/thumbnails.done")
if ((done_items != 6)) || [[ -n "$twice" || -z "$redone_by" ]]; then
    echo "demo.sh: expected each of the 6 photos done once; done $done_items, twice: ${twice:-none}" >&2
    exit 1
fi
say demo "6 items, 6 thumbnails, none twice: a claim renames the item from new/ to cur/ on the volume,"
say demo "and only one rename can win, whichever pod tries. photo-3.jpg failed once, went back to the"
say demo "queue and was done by $redone_by. Had a consumer been killed mid-item, its item would come back too."
pause 1

section "done"
say demo "Daemons stopped and $tmp removed on exit."
