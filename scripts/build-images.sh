#!/usr/bin/env bash
# Builds the container images of the two daemons from locally built binaries:
#   berth/berth-scheduler:TAG   deploy/docker/scheduler.Dockerfile
#   berth/berth-agent:TAG       deploy/docker/agent.Dockerfile
# Usage: scripts/build-images.sh [--profile release|debug] [--base IMAGE] [--tag TAG]
#   --profile  cargo profile of the binaries (default release; builds them first)
#   --base     base image for both (default: each Dockerfile's own, distroless cc)
#   --tag      image tag (default: the workspace version)
# The binaries are built here and copied into the build context: no Rust toolchain
# or registry is needed inside Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release base="" tag=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --base) base="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        *) echo "build-images: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) cargo_flags=(--release) dir=release ;;
    debug) cargo_flags=() dir=debug ;;
    *) echo "build-images: --profile must be release or debug, not $profile" >&2; exit 2 ;;
esac
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
tag=${tag:-$version}
command -v docker >/dev/null || { echo "build-images: no docker CLI" >&2; exit 1; }

cargo build "${cargo_flags[@]}" -p berth-scheduler -p berth-agent --bin berth-scheduler --bin berth-agent >&2

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
build() { # NAME
    rm -rf "${ctx:?}"/*
    cp "target/$dir/$1" "$ctx/$1"
    mkdir "$ctx/data"
    local args=(--build-arg "VERSION=$version" -t "berth/$1:$tag" -f "deploy/docker/${1#berth-}.Dockerfile")
    [ -n "$base" ] && args+=(--build-arg "BASE=$base")
    DOCKER_BUILDKIT=0 docker build -q "${args[@]}" "$ctx" >/dev/null
    echo "build-images: built berth/$1:$tag" >&2
}
build berth-scheduler
build berth-agent
