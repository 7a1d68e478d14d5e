#!/usr/bin/env bash
# Builds berth-test/cc-base:latest, a minimal glibc base for the daemons' images, from
# this machine's own libraries (no registry: tests and offline machines). It holds what
# distroless/cc does for our binaries: the dynamic loader, libc, libm, libgcc_s, CA
# certificates, /tmp, and the users root and nonroot (65532).
# Does nothing when the image exists, unless --force is given.
set -euo pipefail

force=false
[ "${1:-}" = "--force" ] && force=true
command -v docker >/dev/null || { echo "build-base-image: no docker CLI" >&2; exit 1; }
image=berth-test/cc-base:latest
if ! $force && docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
if command -v flock >/dev/null; then
    exec 9>"${TMPDIR:-/tmp}/berth-build-base-image.lock"
    flock 9
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot" "$root/root"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
# The loader and the libraries the daemons link, as the loader finds them here.
for lib in /lib64/ld-linux-x86-64.so.2 $(ldconfig -p | awk '/(libc|libm|libgcc_s)\.so\.[0-9]+ \(libc6,x86-64\)/ {print $NF}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
for needed in libc.so.6 libm.so.6 libgcc_s.so.1; do
    find "$root" -name "$needed" | grep -q . || { echo "build-base-image: $needed not found on this machine" >&2; exit 1; }
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chown 65532:65532 "$root/home/nonroot"
tar --numeric-owner -C "$root" -cf "$ctx/rootfs.tar" .
printf 'FROM scratch\nADD rootfs.tar /\n' >"$ctx/Dockerfile"
rm -rf "$root"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
echo "build-base-image: built $image" >&2
