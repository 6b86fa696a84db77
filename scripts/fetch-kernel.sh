#!/usr/bin/env bash
# Debian's stock kernel (what linux-image-$2 depends on; $2 is amd64 or arm64, default amd64),
# unpacked into $1: $1/vmlinuz, $1/config, $1/lib/modules/<release>/ with modules.dep from depmod.
# Another architecture than the host's needs `dpkg --add-architecture` (scripts/deps.sh does it) for apt to see the package.
# Idempotent: a stamp naming the package version skips the work next time.
set -euo pipefail
out=${1:-build/kernel}
arch=${2:-amd64}
case "$arch" in amd64|arm64) ;; *) echo "fetch-kernel: unknown architecture '$arch' (amd64 or arm64)" >&2; exit 2 ;; esac
native=$(dpkg --print-architecture)
# Without the architecture apt-cache fails (exit 100) before it could say why: say it here.
if [ "$arch" != "$native" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  hint=""; [ "$arch" != arm64 ] || hint=" (\`npx just deps-arm64\` does both)"
  echo "fetch-kernel: apt has no $arch packages on this host: run dpkg --add-architecture $arch && apt-get update$hint" >&2
  exit 1
fi
meta="linux-image-$arch"
[ "$arch" = "$native" ] || meta="$meta:$arch"
mkdir -p "$out"
# Empty, never a failed pipeline, when apt does not know the package: the message below says so.
resolve() { apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true; }
pkg=$(resolve)
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || sudo apt-get update -qq
  pkg=$(resolve)
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve $meta's kernel package (apt-cache depends $meta names no linux-image-<version>; is a Debian archive for $arch in apt's sources?)" >&2; exit 1; }
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$pkg" ] && [ -f "$out/vmlinuz" ]; then
  echo "kernel: $pkg (cached in $out)"
  exit 0
fi
pkg=${pkg%%:*}
release=${pkg#linux-image-}
[ "$arch" = "$native" ] || pkg="$pkg:$arch"
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
