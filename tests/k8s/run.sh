#!/usr/bin/env bash
# run.sh: validate every manifest in k8s-examples/ offline (CTest k8s.manifests).
#
#   tests/k8s/run.sh --baton BIN --batond BIN --image IMAGE --cache DIR
#
# Installs the pinned npm packages of package-lock.json (kubernetes-models,
# yaml, typescript) into DIR on first use, then runs validate.js twice: on
# k8s-examples/*.yaml, which must pass, and on fixtures/*.yaml, which must
# fail with every problem their "# expect:" lines name (so the validator is
# shown to fail). baton's and batond's --help tell which commands and flags
# are real. yamllint, when installed, checks the examples' style too.
#
# Exit: 0 valid; 1 a problem (printed); 77 skipped, with the reason on
# stdout: no node or npm, or the npm registry unreachable with no cache.
set -euo pipefail

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

baton='' batond='' image='' cache=''
while (($#)); do
    case "$1" in
    --baton) baton=$2; shift 2 ;;
    --batond) batond=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    *) usage ;;
    esac
done
[[ -n $baton && -n $batond && -n $image && -n $cache ]] || usage
# validate.js runs from other directories: make the paths absolute.
baton=$(realpath -- "$baton") batond=$(realpath -- "$batond")
mkdir -p "$cache" && cache=$(realpath -- "$cache")

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
examples=$(cd "$here/../../k8s-examples" && pwd -P)

skip() {
    echo "SKIP k8s.manifests: $*"
    exit 77
}

command -v node >/dev/null || skip "node is not installed (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || skip "npm is not installed (Debian: apt-get install npm)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 16 ? 0 : 1)' ||
    skip "node $(node --version) is older than 16"

# One install at a time per cache (parallel ctest runs share the build tree).
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if ! cmp -s "$here/package-lock.json" "$cache/package-lock.json" ||
    [[ ! -f $cache/node_modules/kubernetes-models/package.json ]]; then
    cp "$here/package.json" "$here/package-lock.json" "$cache/"
    echo "installing kubernetes-models, yaml and typescript into $cache (npm ci)"
    if ! (cd "$cache" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >"$cache/npm.log" 2>&1; then
        rm -f "$cache/package-lock.json"  # install again next time
        if ! timeout 30 npm ping >/dev/null 2>&1; then
            skip "the npm registry is unreachable and $cache has no packages yet (see $cache/npm.log)"
        fi
        tail -n 20 "$cache/npm.log"
        echo "FAILED: npm ci in $cache"
        exit 1
    fi
fi
flock -u 9

export NODE_PATH="$cache/node_modules"
shopt -s nullglob
manifests=("$examples"/*.yaml)
fixtures=("$here"/fixtures/*.yaml)
((${#manifests[@]} > 0)) || { echo "FAILED: no manifests in $examples"; exit 1; }
((${#fixtures[@]} > 0)) || { echo "FAILED: no fixtures in $here/fixtures"; exit 1; }

status=0
echo "== k8s-examples: ${#manifests[@]} files"
(cd "$examples/.." && node "$here/validate.js" --baton "$baton" --batond "$batond" --image "$image" \
    --index "$examples/README.md" "${manifests[@]}") || status=1

echo "== negative fixtures: must be rejected"
(cd "$here" && node "$here/validate.js" --baton "$baton" --batond "$batond" --image "$image" \
    --expect-failure "${fixtures[@]}") || status=1

if command -v yamllint >/dev/null; then
    echo "== yamllint"
    yamllint --strict -c "$here/yamllint.yaml" "${manifests[@]}" && echo "ok: yamllint" || status=1
else
    echo "== yamllint not installed: style check skipped"
fi
exit "$status"
