#!/bin/busybox sh
# The comparison init for `just bench`: a plain busybox shell script doing burrow's microvm steps
# (mounts, the same modules, zram swap with mkswap/swapon, wait for the root disk, port links,
# mount root, switch_root, exec the same agent). Written the way such scripts usually are.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t tmpfs -o nosuid,nodev,size=50% tmpfs /tmp
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec devpts /dev/pts
mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm

if [ -f /lib/modules/$(uname -r)/modules.dep ]; then
  modprobe -a virtio_mmio virtio_pci virtio_blk virtio_console crc32c_generic ext4 zram lz4 2>/dev/null
fi

# zram swap: half of RAM, lz4, priority 100
i=0
while [ ! -e /sys/block/zram0 ] && [ $i -lt 100 ]; do usleep 10000; i=$((i + 1)); done
if [ -e /sys/block/zram0 ]; then
  echo lz4 > /sys/block/zram0/comp_algorithm 2>/dev/null || echo lzo-rle > /sys/block/zram0/comp_algorithm
  mem_kib=$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)
  echo $((mem_kib * 512)) > /sys/block/zram0/disksize
  mkswap -L burrow-zram /dev/zram0 >/dev/null
  swapon -p 100 /dev/zram0
  echo 0 > /proc/sys/vm/page-cluster
  echo 100 > /proc/sys/vm/swappiness
  echo 0 > /proc/sys/vm/watermark_boost_factor
fi

# wait for the root disk (polling, as shell inits do)
i=0
while [ ! -b /dev/vda ] && [ $i -lt 500 ]; do usleep 10000; i=$((i + 1)); done
mkdir -p /dev/virtio-ports
for port in /sys/class/virtio-ports/vport*; do
  [ -r "$port/name" ] || continue
  name=$(cat "$port/name")
  [ -n "$name" ] && ln -sf "../${port##*/}" "/dev/virtio-ports/$name"
done

mkdir -p /sysroot
mount -t ext4 -o rw,noatime /dev/vda /sysroot || { echo "busybox-init: cannot mount /dev/vda"; poweroff -f; }
for dir in dev proc sys run tmp; do mount --move /$dir /sysroot/$dir; done
exec switch_root /sysroot /usr/local/bin/guest-agent
