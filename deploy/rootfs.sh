#!/bin/sh
# The runtime image's root filesystem: the agent and exactly the shared libraries it links, each
# at the path the dynamic loader looks for it, the loader included. Used by the Dockerfile's
# build stage and by `cargo xtask image` (which builds the image from a locally built binary).
#
#   deploy/rootfs.sh BINARY DIR
set -eu

if [ "$#" -ne 2 ]; then
    echo "error: usage: deploy/rootfs.sh BINARY DIR" >&2
    exit 2
fi
bin=$1
root=$2
if [ ! -f "$bin" ]; then
    echo "error: no binary at $bin" >&2
    exit 2
fi

install -D -m 0755 "$bin" "$root/usr/local/bin/mirror"
# Every absolute path ldd prints: the libraries (`name => /path (addr)`) and the loader
# (`/lib64/ld-linux-x86-64.so.2 (addr)`); linux-vdso has none. Copied as files, not symlinks
# (`/lib` is a symlink to `usr/lib` on merged-/usr systems, and scratch has neither).
ldd "$bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# Mount points of /proc and /sys, which a container has (a runtime would make them too).
mkdir -p "$root/proc" "$root/sys"
