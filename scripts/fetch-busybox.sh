#!/usr/bin/env bash
# Debian's busybox-static for another architecture, unpacked (not installed: busybox-static:arm64
# and the host's busybox-static cannot both be installed) into $1; prints the binary's path.
# Usage: fetch-busybox.sh OUT_DIR ARCH (amd64 or arm64). Cached by package version.
set -euo pipefail
out=${1:?usage: fetch-busybox.sh OUT_DIR ARCH}
arch=${2:?usage: fetch-busybox.sh OUT_DIR ARCH}
case "$arch" in amd64|arm64) ;; *) echo "fetch-busybox: unknown architecture '$arch' (amd64 or arm64)" >&2; exit 2 ;; esac
version=$(apt-cache policy "busybox-static:$arch" 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  echo "fetch-busybox: apt knows no busybox-static:$arch (dpkg --add-architecture $arch && apt-get update: \`ARCH=$arch just deps\`)" >&2
  exit 1
fi
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$version" ] && [ -x "$out/bin/busybox" ]; then
  echo "$out/bin/busybox"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"   # apt-get download runs as _apt and writes here
(cd "$work" && apt-get download -q "busybox-static:$arch=$version") >&2
dpkg-deb -x "$work"/busybox-static_*.deb "$work/x"
rm -rf "$out"
mkdir -p "$out/bin"
cp "$work/x/bin/busybox" "$out/bin/busybox"
echo "$version" > "$out/.stamp"
echo "$out/bin/busybox"
