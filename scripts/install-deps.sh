#!/usr/bin/env bash
# install-deps.sh: install baton's build and test dependencies on Debian 12.
#
#   scripts/install-deps.sh [--with-gluster] [--with-ceph] [--with-node] [--with-bench]
#                           [--with-podman]
#
#   --with-gluster  glusterfs-server and -client (the cross-node e2e tests)
#   --with-ceph     ceph-mon, ceph-osd, ceph-mds, ceph-fuse, ceph-common (the
#                   CephFS e2e tests; ~60 s and 259 MB on a fresh machine)
#   --with-node     nodejs and npm, unless a node and npm are already on PATH
#                   (tests/k8s validates the manifests with kubernetes-models)
#   --with-bench    hyperfine (bench/)
#   --with-podman   podman, buildah, runc, debootstrap, ... (scripts/build-image.sh)
#
# python3 is for the tests (tests/cli/fake_batond.py); tmux for the job-control
# test (a real terminal); bindfs for the test that a root whose locks stay on
# one node is refused.
#
# Idempotent: when every package is installed already (checked with dpkg-query)
# it does nothing and touches no network. Otherwise it runs `apt-get update`
# once and installs only what is missing, non-interactively. Needs root (or
# sudo).
set -euo pipefail

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

packages=(
    build-essential cmake g++ pkg-config
    libboost1.81-dev libspdlog-dev nlohmann-json3-dev
    libgtest-dev libgmock-dev
    socat util-linux iproute2 procps psmisc python3
    tmux bindfs
)
for arg in "$@"; do
    case "$arg" in
    --with-gluster) packages+=(glusterfs-server glusterfs-client) ;;
    --with-ceph) packages+=(ceph-mon ceph-osd ceph-mds ceph-fuse ceph-common fuse3) ;;
    --with-node)
        # Another node (e.g. NodeSource's, which bundles npm) conflicts
        # with Debian's npm package: keep whichever is there.
        if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
            packages+=(nodejs npm)
        fi
        ;;
    --with-bench) packages+=(hyperfine) ;;
    --with-podman) packages+=(podman buildah runc debootstrap slirp4netns uidmap) ;;
    -h | --help) usage ;;
    *) printf 'install-deps: unknown option %s\n' "$arg" >&2; usage ;;
    esac
done

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages already installed"
    exit 0
fi

sudo=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        printf 'install-deps: missing packages (%s) and not root: run as root\n' "${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run instead of failing at once.
apt_opts=(-o DPkg::Lock::Timeout=600)
"${sudo[@]}" apt-get "${apt_opts[@]}" update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null
echo "install-deps: done"
