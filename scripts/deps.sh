#!/usr/bin/env bash
# Install the Debian packages burrow's host side needs, only when something is missing.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in qemu-system-x86 e2fsprogs erofs-utils squashfs-tools kmod cpio zstd xz-utils busybox-static gcc libc6-dev; do
  have "$pkg" || need+=("$pkg")
done
# ARCH=arm64: what cross-building and booting arm64 guests takes (busybox-static:arm64 is unpacked by
# scripts/fetch-busybox.sh instead: it cannot be installed beside the host's busybox-static).
arch=${ARCH:-}
case "$arch" in arm64|aarch64) arch=arm64 ;; ""|x86_64|amd64|x64) arch="" ;; *) echo "deps: unknown ARCH '$arch' (x86_64 or arm64)" >&2; exit 2 ;; esac
added_arch=0
if [ "$arch" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
  for pkg in qemu-system-arm gcc-aarch64-linux-gnu libc6:arm64 linux-libc-dev:arm64; do
    have "$pkg" || need+=("$pkg")
  done
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    if [ "$(id -u)" -eq 0 ]; then dpkg --add-architecture arm64; else sudo dpkg --add-architecture arm64; fi
    added_arch=1
  fi
fi
if [ ${#need[@]} -eq 0 ]; then
  echo "deps: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# A newly added architecture has no package lists yet: update once before installing.
[ "$added_arch" -eq 0 ] || $SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
}
