#!/usr/bin/env bash
# Install the Debian packages burrow's host side needs, only when something is missing.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in qemu-system-x86 e2fsprogs erofs-utils squashfs-tools kmod cpio zstd xz-utils busybox-static gcc libc6-dev; do
  have "$pkg" || need+=("$pkg")
done
# The OCI engine tests (test/boot/oci-*.test.ts) drive burrow-oci from these, rootful, with the
# kernel's overlayfs (no uidmap or fuse-overlayfs needed); runc is the reference those tests check
# themselves against (BURROW_OCI_TEST_RUNTIME=runc). conmon and ctr come with podman and containerd.
for pkg in podman containerd docker.io runc; do
  have "$pkg" || need+=("$pkg")
done
# The engine's network (test/boot/oci-network.test.ts): Podman's bridge networks through netavark
# (with iptables for its NAT and port rules, aardvark-dns for names); burrow-oci mirrors the
# container's veth to a tap with ip and tc (iproute2) and starts QEMU in the namespace with nsenter
# (util-linux).
for pkg in netavark aardvark-dns iptables iproute2 util-linux; do
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
