#!/usr/bin/env bash
# The demo root disk: busybox-static, the guest agent at /usr/local/bin/guest-agent, made by
# mke2fs -d (no loop mounts, no root needed). Usage: make-rootfs.sh OUT [AGENT] [SIZE]
# AGENT_MODE=0644 installs the agent without exec permission (a failure-path test).
# BUSYBOX=PATH takes another static busybox (another architecture's: scripts/fetch-busybox.sh).
set -euo pipefail
out=${1:-dist/rootfs.ext4}
agent=${2:-image/rootfs/guest-agent}
size=${3:-32M}
busybox=${BUSYBOX:-}
if [ -z "$busybox" ]; then
  busybox=$(command -v busybox || true)
  [ -x /bin/busybox ] && busybox=/bin/busybox
  if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q "statically linked"; then
    [ -x /usr/bin/busybox ] || { echo "make-rootfs: busybox-static is not installed (just deps)" >&2; exit 1; }
    busybox=/usr/bin/busybox
  fi
fi
[ -x "$busybox" ] || { echo "make-rootfs: $busybox is not an executable busybox" >&2; exit 1; }
# Another architecture's busybox cannot run here to list its applets: the host's (the same Debian
# build) lists them.
applets=$("$busybox" --list 2>/dev/null) || applets=$( (command -v busybox >/dev/null && busybox --list) || /usr/bin/busybox --list)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,run,tmp,root,mnt}
chmod 1777 "$stage/tmp"
chmod 700 "$stage/root"
cp "$busybox" "$stage/bin/busybox"
for applet in $applets; do
  [ "$applet" = busybox ] || ln -sf busybox "$stage/bin/$applet"
done
install -m "${AGENT_MODE:-0755}" "$agent" "$stage/usr/local/bin/guest-agent"
echo "burrow-demo" > "$stage/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' > "$stage/etc/passwd"
# An unprivileged user for the workload spec (burrow.user=app): its own group and one more.
printf 'root:x:0:\nwheel:x:10:app\napp:x:1000:\n' > "$stage/etc/group"
mkdir -p "$stage/home/app"
mkdir -p "$(dirname "$out")"
rm -f "$out"
export E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-0}
mke2fs -q -t ext4 -L burrow-root -U 6f1d2c3b-4a59-4e21-9b7c-5d0e8f1a2b3c -E root_owner=0:0,hash_seed=6f1d2c3b-4a59-4e21-9b7c-5d0e8f1a2b3c -d "$stage" -F "$out" "$size"
echo "rootfs: $out ($size, label burrow-root)"
