#!/usr/bin/env bash
# Builds the container images the Docker runtime's tests use, locally (no registry):
#   berth-test/busybox:latest      FROM scratch + Debian's static busybox (sh, echo, sleep, env, ...)
#   berth-test/visible-all:latest  the same with ENV NVIDIA_VISIBLE_DEVICES=all, as CUDA images set
# Installs busybox-static with apt-get when it is missing and we are root.
# Does nothing for an image that exists unless --force is given.
set -euo pipefail

force=false
[ "${1:-}" = "--force" ] && force=true

command -v docker >/dev/null || { echo "build-test-images: no docker CLI" >&2; exit 1; }

# Test processes run in parallel and may all call this at once: one at a time.
if command -v flock >/dev/null; then
    exec 9>"${TMPDIR:-/tmp}/berth-build-test-images.lock"
    flock 9
fi

have() { docker image inspect "$1" >/dev/null 2>&1; }
if ! $force && have berth-test/busybox:latest && have berth-test/visible-all:latest; then
    exit 0
fi

is_static() { [ -x "$1" ] && case "$(LC_ALL=C ldd "$1" 2>&1 || true)" in *'not a dynamic'*) true ;; *) false ;; esac; }
busybox=/bin/busybox
if ! is_static "$busybox" && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build-test-images: installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
fi
if ! is_static "$busybox"; then
    echo "build-test-images: need a static busybox at $busybox (apt-get install busybox-static)" >&2
    exit 1
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
DOCKERFILE
build() { DOCKER_BUILDKIT=0 docker build -q -t "$1" "$ctx" >/dev/null 2>"$ctx/err" || { cat "$ctx/err" >&2; exit 1; }; }
build berth-test/busybox:latest

cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM berth-test/busybox:latest
ENV NVIDIA_VISIBLE_DEVICES=all
DOCKERFILE
build berth-test/visible-all:latest
echo "build-test-images: built berth-test/busybox:latest and berth-test/visible-all:latest" >&2
