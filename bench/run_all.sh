#!/usr/bin/env bash
# Runs every benchmark against an existing build; builds nothing.
# Usage: bench/run_all.sh [BUILD_DIR] [--quick] [--dir DIR]
#   BUILD_DIR defaults to build-bench next to this folder; it must hold
#   bench/{lock_roundtrip,handover,publish,queue}_bench, daemon/batond and
#   cli/baton (cmake --build BUILD_DIR --target lock_roundtrip_bench
#   handover_bench publish_bench queue_bench baton_cli batond).
#   --quick: fewer iterations, for a smoke run (about a minute).
#   --dir DIR: the filesystem publish_bench and queue_bench measure (default
#   $TMPDIR or /var/tmp; not tmpfs, where fsync costs nothing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build-bench"
quick=no
dir=${TMPDIR:-/var/tmp}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=yes ;;
    --dir)
      [ $# -ge 2 ] || { echo "run_all.sh: --dir needs a directory" >&2; exit 64; }
      dir=$2
      shift
      ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) build=$1 ;;
  esac
  shift
done
build=$(cd "$build" && pwd)
for file in bench/lock_roundtrip_bench bench/handover_bench bench/publish_bench \
  bench/queue_bench daemon/batond cli/baton; do
  [ -x "$build/$file" ] || { echo "run_all.sh: $build/$file is not built" >&2; exit 69; }
done
[ -d "$dir" ] || { echo "run_all.sh: $dir is not a directory" >&2; exit 66; }

if [ "$quick" = yes ]; then
  roundtrip=(--iterations 2000 --warmup 200 --repeats 1)
  handover=(--handovers 300 --seconds 1 --repeats 1)
  flock=(--runs 50 --warmup 5 --no-profile)
  publish=(--iterations 40 --warmup 4 --repeats 1)
  queue=(--items 100 --repeats 1)
else
  roundtrip=()
  handover=()
  flock=()
  publish=()
  queue=()
fi

echo "### lock_roundtrip_bench"
"$build/bench/lock_roundtrip_bench" --batond "$build/daemon/batond" "${roundtrip[@]}"
echo
echo "### handover_bench"
"$build/bench/handover_bench" --batond "$build/daemon/batond" "${handover[@]}"
echo
echo "### run_vs_flock.sh"
"$here/run_vs_flock.sh" --build "$build" "${flock[@]}"
echo
echo "### publish_bench"
"$build/bench/publish_bench" --batond "$build/daemon/batond" --dir "$dir" "${publish[@]}"
echo
echo "### queue_bench"
"$build/bench/queue_bench" --batond "$build/daemon/batond" --dir "$dir" "${queue[@]}"
