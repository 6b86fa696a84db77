#!/usr/bin/env bash
# Boot-test a kernel under QEMU TCG (no KVM) and print boot figures.
#
# usage: kernel-config/test-boot.sh KERNEL [--bun-only] [--runs N]
#   busybox test (skipped with --bun-only; needs built-in virtio/zram like the micro kernel):
#     -machine microvm with virtio-*-device and -machine q35 with virtio-*-pci:
#     uname, zram swap with lz4, raw virtio-blk read, ext4 mount, virtio-serial port, virtio-rng.
#   bun test (N runs, default 3, on microvm): a `bun build --compile` binary exec'd by a busybox
#     /init after mounting /proc and /dev; it uses bun:ffi (getpid, sync, reboot(RB_POWER_OFF)) and
#     Bun.spawn. Reports: kernel time of "Run /init", bun's first output (/proc/uptime), the
#     difference, "crng init done" time, and QEMU wall time until power-off.
# Env: BUN (default <repo>/node_modules/.bin/bun), QEMU_TIMEOUT (default 120 s per boot),
#      KEEP=1 keeps the work dir with the logs (also kept on failure).
#
# TCG note: without KVM there is no kvmclock, and -machine microvm has no HPET/PM timer, so when the
# PIT-based TSC calibration fails (it does on a loaded host) the kernel hangs early. That happens to
# Debian's kernel too. Passing tsc_early_khz=<host TSC kHz> skips the calibration; KVM guests get the
# frequency from kvmclock (CONFIG_KVM_GUEST) and need nothing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
kernel=${1:?usage: test-boot.sh KERNEL [--bun-only] [--runs N]}; shift
kernel=$(readlink -f "$kernel")
bun_only=0; runs=3
while [ $# -gt 0 ]; do
  case $1 in --bun-only) bun_only=1;; --runs) runs=$2; shift;; *) echo "unknown arg $1" >&2; exit 2;; esac
  shift
done
BUN=${BUN:-$repo/node_modules/.bin/bun}
qt=${QEMU_TIMEOUT:-120}
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
[ -n "$busybox" ] && file -L "$busybox" | grep -q 'statically linked' || { echo "need busybox-static" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "need qemu-system-x86" >&2; exit 1; }

fail=0
w=$(mktemp -d /tmp/burrow-kernel-test.XXXXXX)
trap 'if [ $fail = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$w"; else echo "logs kept in $w" >&2; fi' EXIT
tsc_khz=$(awk -F: '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
append="console=ttyS0 panic=-1 printk.time=1 tsc_early_khz=$tsc_khz"

qemu() { # machine initrd log extra-args...
  local m=$1 initrd=$2 log=$3; shift 3
  local t0 t1 rc=0
  t0=$(date +%s%N)
  timeout "$qt" qemu-system-x86_64 -machine "$m" -accel tcg -cpu max -m 512M -nographic -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "$append" "$@" </dev/null >"$log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  echo "$rc $(( (t1 - t0) / 1000000 ))"
}
expect() { # log pattern description
  if grep -aqE "$2" "$1"; then echo "  ok   $3"; else echo "  FAIL $3 (no /$2/ in $1)"; fail=1; fi
}

# ---- busybox test -------------------------------------------------------------
if [ $bun_only = 0 ]; then
  r=$w/bb; mkdir -p $r/{bin,dev,proc,sys,mnt,tmp}
  cp "$busybox" $r/bin/busybox
  cat > $r/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
echo "T uname=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"
echo lz4 > /sys/block/zram0/comp_algorithm && echo "T zram-comp=$(cat /sys/block/zram0/comp_algorithm)"
echo 64M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0
echo "T swaps=$(grep -c zram0 /proc/swaps)"; cat /proc/swaps
echo "T raw=$(head -c 13 /dev/vda)"
mount -t ext4 /dev/vdb /mnt && echo "T ext4=$(cat /mnt/hello.txt)" && umount /mnt
for p in /dev/vport*p1; do echo hello-virtio-serial > $p; done
echo "T hwrng=$(cat /sys/class/misc/hw_random/rng_current)"
echo "T vsock=$(ls /dev/vsock)"
echo "T done"
poweroff -f
EOF
  chmod +x $r/init
  (cd $r && find . | cpio -o -H newc 2>/dev/null | zstd -q -3) > $w/bb.cpio.zst   # exercises RD_ZSTD
  (cd $r && find . | cpio -o -H newc 2>/dev/null | gzip -1) > $w/bb.cpio.gz      # exercises RD_GZIP
  printf 'RAWDISK-MAGIC' > $w/raw.img; truncate -s 1M $w/raw.img
  mkdir -p $w/e4 && echo hello-ext4 > $w/e4/hello.txt && truncate -s 16M $w/ext4.img && mkfs.ext4 -q -d $w/e4 $w/ext4.img
  for m in microvm q35; do
    s=device; [ $m = q35 ] && s=pci
    initrd=$w/bb.cpio.zst; [ $m = q35 ] && initrd=$w/bb.cpio.gz
    rm -f $w/vport.out
    read -r rc ms < <(qemu $m $initrd $w/bb-$m.log -smp 2 \
      -drive id=d0,file=$w/raw.img,format=raw,if=none -device virtio-blk-$s,drive=d0 \
      -drive id=d1,file=$w/ext4.img,format=raw,if=none -device virtio-blk-$s,drive=d1 \
      -device virtio-serial-$s -chardev file,id=c0,path=$w/vport.out -device virtserialport,chardev=c0,name=test \
      -device virtio-rng-$s)
    echo "busybox on $m ($(basename $initrd)): qemu rc=$rc wall=${ms}ms"
    expect $w/bb-$m.log "T uname=.* cpus=2" "uname, 2 CPUs"
    expect $w/bb-$m.log "T zram-comp=.*\[lz4\]" "zram lz4"
    expect $w/bb-$m.log "T swaps=1" "swapon /dev/zram0"
    expect $w/bb-$m.log "T raw=RAWDISK-MAGIC" "virtio-blk raw read"
    expect $w/bb-$m.log "T ext4=hello-ext4" "ext4 on virtio-blk"
    expect $w/bb-$m.log "T hwrng=virtio_rng" "virtio-rng"
    expect $w/bb-$m.log "T vsock=/dev/vsock" "vsock"
    expect $w/bb-$m.log "reboot: Power down" "poweroff"
    grep -q hello-virtio-serial $w/vport.out 2>/dev/null && echo "  ok   virtio-serial port" || { echo "  FAIL virtio-serial port"; fail=1; }
    [ "$rc" = 0 ] || fail=1
  done
fi

# ---- bun test ---------------------------------------------------------------
mkdir -p $w/bun && cat > $w/bun/t.ts <<'EOF'
import { dlopen, FFIType } from "bun:ffi";
import { readFileSync } from "node:fs";
const up0 = readFileSync("/proc/uptime", "utf8").split(" ")[0];
console.log(`BUNTEST first-output uptime=${up0}`);
const libc = dlopen("libc.so.6", {
  getpid: { args: [], returns: FFIType.i32 },
  sync: { args: [], returns: FFIType.void },
  reboot: { args: [FFIType.i32], returns: FFIType.i32 },
});
console.log(`BUNTEST pid=${libc.symbols.getpid()} bun=${Bun.version} uuid=${crypto.randomUUID()}`);
const p = Bun.spawn(["/bin/busybox", "echo", "spawned"], { stdout: "pipe" });
console.log(`BUNTEST child said: ${(await new Response(p.stdout).text()).trim()} exit=${await p.exited}`);
console.log(`BUNTEST ok uptime=${readFileSync("/proc/uptime", "utf8").split(" ")[0]}`);
libc.symbols.sync();
if (libc.symbols.getpid() === 1) libc.symbols.reboot(0x4321fedc); // RB_POWER_OFF
EOF
(cd $w/bun && "$BUN" build --compile --bytecode --format=esm --no-compile-autoload-dotenv \
   --no-compile-autoload-bunfig t.ts --outfile t >/dev/null)
r=$w/bun/root; mkdir -p $r/{bin,dev,proc,sys,tmp,lib64,lib/x86_64-linux-gnu}
cp "$busybox" $r/bin/busybox; cp $w/bun/t $r/t
for l in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2; do
  cp -L /lib/x86_64-linux-gnu/$l $r/lib/x86_64-linux-gnu/
done
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 $r/lib64/ld-linux-x86-64.so.2
mknod $r/dev/console c 5 1; mknod $r/dev/null c 1 3
printf '#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n/bin/busybox mount -t devtmpfs dev /dev\nexec /t\n' > $r/init
chmod +x $r/init
(cd $r && find . | cpio -o -H newc 2>/dev/null) > $w/bun.cpio   # uncompressed: nothing to inflate
echo "bun test on microvm, $runs runs (initramfs $(( $(stat -c %s $w/bun.cpio) / 1048576 )) MiB, uncompressed):"
printf '  %-4s %-10s %-12s %-14s %-10s %-8s\n' run "Run /init" first-output "init->output" "crng done" "wall"
for i in $(seq 1 "$runs"); do
  read -r rc ms < <(qemu microvm $w/bun.cpio $w/bun-$i.log)
  # A line missing from a failed run's log is "?", not grep's exit 1 ending the script before its FAIL line.
  ri=$(grep -a 'Run /init as init process' $w/bun-$i.log | sed -E 's/^\[ *([0-9.]+)\].*/\1/' | head -1 || true)
  fo=$(grep -a 'BUNTEST first-output' $w/bun-$i.log | sed -E 's/.*uptime=([0-9.]+).*/\1/' | head -1 || true)
  cr=$(grep -a 'crng init done' $w/bun-$i.log | sed -E 's/^\[ *([0-9.]+)\].*/\1/' | head -1 || true)
  d=$( [ -n "$ri" ] && [ -n "$fo" ] && echo "$fo - $ri" | bc || echo "?")
  printf '  %-4s %-10s %-12s %-14s %-10s %-8s rc=%s\n' $i "${ri:-?}" "${fo:-?}" "$d" "${cr:-?}" "${ms}ms" "$rc"
  grep -aq 'BUNTEST child said: spawned exit=0' $w/bun-$i.log && grep -aq 'reboot: Power down' $w/bun-$i.log \
    || { echo "  FAIL bun run $i (log: $w/bun-$i.log)"; tail -20 $w/bun-$i.log; fail=1; }
done
if [ $fail = 0 ]; then echo "ALL OK"; else echo "FAILED"; fi
exit $fail
