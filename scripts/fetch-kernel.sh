#!/usr/bin/env bash
# Debian's stock kernel (what linux-image-$2 depends on; $2 is amd64 or arm64, default amd64),
# unpacked into $1: $1/vmlinuz, $1/config, $1/lib/modules/<release>/ with modules.dep from depmod.
# arm64 needs `dpkg --add-architecture arm64` (scripts/deps.sh does it) for apt to see the package.
# Idempotent: a stamp naming the package version skips the work next time.
set -euo pipefail
out=${1:-build/kernel}
arch=${2:-amd64}
case "$arch" in amd64|arm64) ;; *) echo "fetch-kernel: unknown architecture '$arch' (amd64 or arm64)" >&2; exit 2 ;; esac
meta="linux-image-$arch"
[ "$arch" = amd64 ] || meta="$meta:$arch"
mkdir -p "$out"
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || sudo apt-get update -qq
  pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve $meta's kernel package" >&2; exit 1; }
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$pkg" ] && [ -f "$out/vmlinuz" ]; then
  echo "kernel: $pkg (cached in $out)"
  exit 0
fi
pkg=${pkg%%:*}
release=${pkg#linux-image-}
[ "$arch" = amd64 ] || pkg="$pkg:$arch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"
(cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || {
  apt-get update -qq >/dev/null
  (cd "$work" && apt-get download "$pkg")
}
dpkg-deb -x "$work"/*.deb "$work/x"
rm -rf "$out/lib" "$out/vmlinuz" "$out/config"
mkdir -p "$out/lib/modules"
cp "$work/x/boot/vmlinuz-$release" "$out/vmlinuz"
cp "$work/x/boot/config-$release" "$out/config"
cp -a "$work/x/lib/modules/$release" "$out/lib/modules/"
depmod -b "$out" "$release"
echo "$pkg" > "$out/.stamp"
echo "kernel: $pkg -> $out (release $release)"
