#!/usr/bin/env bash
# Runs every benchmark against an existing build; builds nothing.
# Usage: bench/run_all.sh [BUILD_DIR] [--quick]
#   BUILD_DIR defaults to build-bench next to this folder; it must hold
#   bench/lock_roundtrip_bench, bench/handover_bench, daemon/batond and
#   cli/baton (cmake --build BUILD_DIR --target lock_roundtrip_bench
#   handover_bench baton_cli batond). --quick: fewer iterations, for a smoke run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build-bench"
quick=no
for arg in "$@"; do
  case "$arg" in
    --quick) quick=yes ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) build=$arg ;;
  esac
done
build=$(cd "$build" && pwd)
for file in bench/lock_roundtrip_bench bench/handover_bench daemon/batond cli/baton; do
  [ -x "$build/$file" ] || { echo "run_all.sh: $build/$file is not built" >&2; exit 69; }
done

if [ "$quick" = yes ]; then
  roundtrip=(--iterations 2000 --warmup 200 --repeats 1)
  handover=(--handovers 300 --seconds 1 --repeats 1)
  flock=(--runs 50 --warmup 5 --no-profile)
else
  roundtrip=()
  handover=()
  flock=()
fi

echo "### lock_roundtrip_bench"
"$build/bench/lock_roundtrip_bench" --batond "$build/daemon/batond" "${roundtrip[@]}"
echo
echo "### handover_bench"
"$build/bench/handover_bench" --batond "$build/daemon/batond" "${handover[@]}"
echo
echo "### run_vs_flock.sh"
"$here/run_vs_flock.sh" --build "$build" "${flock[@]}"
