#!/usr/bin/env bash
# build-image.sh: build docker/Dockerfile with podman on a machine that has no
# container registry and no Docker engine, then smoke-test the image.
#
#   scripts/build-image.sh [--tag TAG] [--no-smoke]
#
#   --tag TAG    image name (default localhost/baton:dev)
#   --no-smoke   skip the smoke test (batond in a container answering ping)
#
# podman runs with its own containers.conf and storage.conf under
# $BATON_PODMAN_DIR (default /var/tmp/baton-podman, kept between runs as a
# cache): runtime runc, ulimits within this machine's hard limits. When the
# local store has no debian:bookworm-slim, one is made with debootstrap
# --variant=minbase (the tarball is cached in the same directory) and tagged
# docker.io/library/debian:bookworm-slim, so the unchanged FROM line builds
# with --pull=never. To use this podman by hand:
#   export CONTAINERS_CONF=/var/tmp/baton-podman/containers.conf
#   export CONTAINERS_STORAGE_CONF=/var/tmp/baton-podman/storage.conf
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

tag=localhost/baton:dev
smoke=1
while (($#)); do
    case "$1" in
    --tag) [[ $# -ge 2 ]] || usage; tag=$2; shift 2 ;;
    --no-smoke) smoke=0; shift ;;
    -h | --help) usage ;;
    *) printf 'build-image: unknown argument %s\n' "$1" >&2; usage ;;
    esac
done

((EUID == 0)) || { echo "build-image: run as root (podman storage, debootstrap)" >&2; exit 1; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"
state=${BATON_PODMAN_DIR:-/var/tmp/baton-podman}
base_image=docker.io/library/debian:bookworm-slim

say() { printf '==> %s\n' "$*"; }

scripts/install-deps.sh --with-podman >/dev/null

mkdir -p "$state/storage" "$state/run"
hard_nofile=$(ulimit -Hn)
cat >"$state/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=${hard_nofile}:${hard_nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
cat >"$state/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$state/storage"
runroot = "$state/run"
EOF
export CONTAINERS_CONF="$state/containers.conf"
export CONTAINERS_STORAGE_CONF="$state/storage.conf"

if ! podman image exists "$base_image"; then
    tarball="$state/debian-bookworm-minbase.tar"
    if [[ ! -s "$tarball" ]]; then
        mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        mirror=${mirror:-http://deb.debian.org/debian}
        rootfs=$(mktemp -d "$state/rootfs.XXXXXX")
        trap 'rm -rf "$rootfs"' EXIT
        say "debootstrap --variant=minbase bookworm from $mirror (about a minute, cached afterwards)"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$state/debootstrap.log" 2>&1 ||
            { tail -n 20 "$state/debootstrap.log" >&2; exit 1; }
        # apt's binary caches add ~90 MB to every layer that runs apt.
        rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
        trap - EXIT
    fi
    say "importing $tarball as $base_image"
    podman import --quiet "$tarball" "$base_image" >/dev/null
fi

say "podman build -f docker/Dockerfile -t $tag ."
start=$SECONDS
podman build --pull=never -f docker/Dockerfile -t "$tag" .
say "built $tag in $((SECONDS - start))s: $(podman image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.1f MB", $1 / 1e6 }')"

((smoke)) || exit 0

# Smoke test: batond as the entrypoint, as the image's non-root user, on a
# volume; `baton ping` and `baton run` from a second process in the container.
say "smoke test"
name="baton-smoke-$$"
vol="baton-smoke-$$"
cleanup() {
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    podman volume rm -f "$vol" >/dev/null 2>&1 || true
}
trap cleanup EXIT
podman volume create "$vol" >/dev/null
# The named volume is root-owned; the sidecar runs as 65532 (fsGroup in k8s).
podman run --rm --user 0 -v "$vol:/data" --entrypoint /bin/sh "$tag" -c 'chown 65532:65532 /data'
podman run -d --name "$name" -v "$vol:/data" -e BATON_ROOT=/data -e BATON_POD_NAME=smoke "$tag" >/dev/null
ok=0
for _ in $(seq 50); do
    if podman exec "$name" baton ping >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
done
if ((!ok)); then
    podman logs "$name" >&2 || true
    echo "build-image: smoke test failed: baton ping never answered" >&2
    exit 1
fi
# shellcheck disable=SC2016 # expanded in the container
out=$(podman exec "$name" baton run --lock smoke -- sh -c 'echo "uid $(id -u) token $BATON_TOKEN"')
say "baton ping ok; baton run in the container: $out"
start=$SECONDS
podman stop -t 10 "$name" >/dev/null
say "podman stop took $((SECONDS - start))s (batond handles SIGTERM as PID 1 when this is ~0s)"
say "smoke test passed"
