#!/usr/bin/env bash
# Build burrow's microVM kernel from Debian's linux-source-6.1 on an x86_64 host:
#   make tinyconfig + kernel-config/common.config + kernel-config/<arch>.config
#   (merge_config.sh -m, make olddefconfig); x86_64: vmlinux (booted through PVH), arm64: Image (cross-compiled).
#
# usage: kernel-config/build.sh [OUTDIR] [ARCH]
#   ARCH x86_64 (default) or arm64; OUTDIR default <repo>/build/kernel-micro (arm64: build/kernel-micro-arm64)
#   writes OUTDIR/vmlinuz and OUTDIR/config
#
# Cache: ${BURROW_CACHE:-$HOME/.cache/burrow}/kernel-micro-<arch>-<key>/{vmlinuz,config,build-info}
#   key = first 16 hex of sha256(fragment bytes + "linux-source-6.1=<debian version>").
#   A cache hit does no work. The unpacked, already built source tree (one per architecture) is kept in
#   ${BURROW_KERNEL_WORKDIR:-$BURROW_CACHE/kernel-work} so a changed fragment rebuilds incrementally.
# Env: BURROW_KERNEL_FRAGMENT (one fragment instead of common + <arch>, for experiments),
#      BURROW_KERNEL_JOBS (default nproc), BURROW_KERNEL_NICE (default 19).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
arch=${2:-x86_64}
case $arch in
  x86_64) make_arch=(ARCH=x86_64); target=vmlinux; image=vmlinux; tree_suffix=""; default_out=build/kernel-micro ;;
  arm64) make_arch=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-); target=Image; image=arch/arm64/boot/Image; tree_suffix=-arm64; default_out=build/kernel-micro-arm64 ;;
  *) printf '[kernel] ERROR: architecture must be x86_64 or arm64, got %s\n' "$arch" >&2; exit 2 ;;
esac
if [ -n "${BURROW_KERNEL_FRAGMENT:-}" ]; then fragments=("$BURROW_KERNEL_FRAGMENT")   # override for experiments
else fragments=("$here/common.config" "$here/$arch.config"); fi
outdir=${1:-"$repo/$default_out"}
cache=${BURROW_CACHE:-$HOME/.cache/burrow}
workroot=${BURROW_KERNEL_WORKDIR:-$cache/kernel-work}
jobs=${BURROW_KERNEL_JOBS:-$(nproc)}
nice=${BURROW_KERNEL_NICE:-19}
srcpkg=linux-source-6.1
tarball=/usr/src/linux-source-6.1.tar.xz

log() { printf '[kernel] %s\n' "$*" >&2; }
die() { printf '[kernel] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported (got $(uname -m))"
for fragment in "${fragments[@]}"; do [ -f "$fragment" ] || die "missing fragment $fragment"; done

# ---- packages ---------------------------------------------------------------
# command or file that proves each package is present
declare -A probe=(
  [$srcpkg]=$tarball [bc]=bc [bison]=bison [flex]=flex [make]=make [gcc]=gcc
  [cpio]=cpio [zstd]=zstd [xz-utils]=xz [libelf-dev]=/usr/include/gelf.h
  [libssl-dev]=/usr/include/openssl/opensslv.h [perl]=perl [python3]=python3
  [util-linux]=flock
)
[ "$arch" = arm64 ] && probe[gcc-aarch64-linux-gnu]=aarch64-linux-gnu-gcc
missing=()
for pkg in "${!probe[@]}"; do
  p=${probe[$pkg]}
  if [[ $p == /* ]]; then [ -e "$p" ] || missing+=("$pkg")
  else command -v "$p" >/dev/null 2>&1 || missing+=("$pkg"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    log "apt-get install failed; running apt-get update once and retrying"
    $sudo apt-get update >&2
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
fi
srcver=$(dpkg-query -W -f='${Version}' "$srcpkg" 2>/dev/null) || die "$srcpkg is not installed"
[ -f "$tarball" ] || die "missing $tarball"

# ---- cache key ----------------------------------------------------------------
key=$( { cat "${fragments[@]}"; printf 'linux-source-6.1=%s\n' "$srcver"; } | sha256sum | cut -c1-16)
cdir="$cache/kernel-micro-$arch-$key"

install_out() {
  mkdir -p "$outdir"
  cp -f "$cdir/vmlinuz" "$outdir/vmlinuz.tmp" && mv -f "$outdir/vmlinuz.tmp" "$outdir/vmlinuz"
  cp -f "$cdir/config" "$outdir/config.tmp" && mv -f "$outdir/config.tmp" "$outdir/config"
  local size; size=$(stat -c %s "$cdir/vmlinuz")
  log "$arch $target: $size bytes ($(( (size + 1023) / 1024 )) KiB)"
  [ -f "$cdir/build-info" ] && sed 's/^/[kernel] /' "$cdir/build-info" >&2
  log "output: $outdir/vmlinuz $outdir/config"
}

if [ -f "$cdir/vmlinuz" ] && [ -f "$cdir/config" ]; then
  log "cache hit: $cdir (nothing to build)"
  install_out
  exit 0
fi

# ---- build ------------------------------------------------------------------
mkdir -p "$cache" "$workroot"
exec 9>"$workroot/.lock"
flock 9   # one build per work tree at a time
if [ -f "$cdir/vmlinuz" ]; then log "built meanwhile by another process"; install_out; exit 0; fi

t0=$(date +%s)
# One tree per architecture: a tree built for one cannot build the other incrementally.
src="$workroot/linux-source-6.1-$srcver$tree_suffix"
kind="incremental build in the existing tree $src"
if [ ! -f "$src/.unpacked" ]; then
  kind="clean build (tarball unpacked in this run)"
  log "unpacking $tarball -> $src"
  rm -rf "$src" "$workroot/unpack.tmp"
  mkdir -p "$workroot/unpack.tmp"
  tar -xaf "$tarball" -C "$workroot/unpack.tmp"
  mv "$workroot/unpack.tmp/linux-source-6.1" "$src"
  rmdir "$workroot/unpack.tmp"
  touch "$src/.unpacked"
fi

# Fragment with the trailing "# reason" comments stripped (Kconfig lines only).
clean="$workroot/microvm-$arch.clean.config"
sed -nE -e 's/^(CONFIG_[A-Za-z0-9_]+=[^[:space:]#]+).*/\1/p' \
        -e 's/^(# CONFIG_[A-Za-z0-9_]+ is not set).*/\1/p' "${fragments[@]}" > "$clean"

mk() { nice -n "$nice" make -C "$src" "${make_arch[@]}" "$@"; }
log "make tinyconfig + merge fragment"
mk -s tinyconfig > "$workroot/merge.log" 2>&1 || { cat "$workroot/merge.log" >&2; die "make tinyconfig failed"; }
(cd "$src" && env "${make_arch[@]}" ./scripts/kconfig/merge_config.sh -m .config "$clean" >> "$workroot/merge.log" 2>&1) \
  || { cat "$workroot/merge.log" >&2; die "merge_config.sh failed"; }
mk -s olddefconfig >&2

# Every option the fragment asks for must have survived olddefconfig.
dropped=()
while IFS= read -r line; do
  case $line in
    CONFIG_*=*)
      grep -qxF "$line" "$src/.config" || dropped+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$src/.config" || echo 'absent'))");;
    "# CONFIG_"*" is not set")
      opt=${line#\# }; opt=${opt%% *}
      ! grep -qE "^$opt=" "$src/.config" || dropped+=("$line (got: $(grep -E "^$opt=" "$src/.config"))");;
  esac
done < "$clean"
if [ ${#dropped[@]} -gt 0 ]; then
  printf '[kernel] ERROR: option(s) from %s did not survive olddefconfig (unmet dependencies?):\n' "${fragments[*]}" >&2
  printf '[kernel]   %s\n' "${dropped[@]}" >&2
  exit 1
fi
grep -q '^CONFIG_MODULES=y' "$src/.config" && die "CONFIG_MODULES ended up enabled; this kernel has no modules"

log "make -j$jobs $target for $arch (nice $nice)"
mk -j"$jobs" "$target" >&2
t1=$(date +%s)

tmp="$cache/.kernel-micro-$key.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
cp "$src/$image" "$tmp/vmlinuz"
cp "$src/.config" "$tmp/config"
cat "${fragments[@]}" > "$tmp/fragments.config"   # what this was built from
{
  echo "linux-source-6.1 $srcver, key $key"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cpus with -j$jobs in $((t1 - t0)) s: $kind"
} > "$tmp/build-info"
rm -rf "$cdir"
mv "$tmp" "$cdir"
log "build time: $((t1 - t0)) s"
install_out
