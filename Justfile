# burrow — build, image, boot and test. `npx just --list` shows the recipes.
set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments := false

bun := justfile_directory() / "node_modules/.bin/bun"
# Which kernel to build images for and boot: micro (kernel-config/, drivers built in; the default)
# or debian (Debian's linux-image-amd64 or -arm64, drivers as modules).
KERNEL := env_var_or_default("KERNEL", "micro")
# Guest architecture: this host's by default; ARCH=arm64 cross-builds burrow and boots it under
# qemu-system-aarch64 -machine virt from dist/arm64/. The host tools (dist/burrow) are always this host's.
ARCH := env_var_or_default("ARCH", if arch() == "aarch64" { "arm64" } else { arch() })
arch_name := if ARCH == "aarch64" { "arm64" } else if ARCH == "amd64" { "x86_64" } else { ARCH }
dist_dir := if arch_name == "arm64" { "dist/arm64" } else { "dist" }
arch_flag := if arch_name == "arm64" { "--arch arm64 " } else { "" }
kernel_dir := if KERNEL == "micro" { if arch_name == "arm64" { "build/kernel-micro-arm64" } else { "build/kernel-micro" } } else { if arch_name == "arm64" { "build/kernel-arm64" } else { "build/kernel" } }
# The fastest measured cold layout per kernel (bench/results): the micro kernel mounts an ext4 boot
# disk holding burrow and runs it in place (pages come in as Bun touches them); Debian's kernel
# needs its modules first, so it gets an initramfs.
boot_image := if KERNEL == "micro" { dist_dir / "boot.ext4" } else { dist_dir / "initramfs.img" }
image_flags := arch_flag + if KERNEL == "micro" { "--kernel-dir none --format ext4" } else { "--kernel-dir " + kernel_dir }
boot_media := arch_flag + if KERNEL == "micro" { "--boot-disk " + boot_image } else { "--initrd " + boot_image }
rootfs_img := if arch_name == "arm64" { "dist/arm64/rootfs.ext4" } else { "dist/rootfs.ext4" }
# On virt the demo root is found by its label (disks number in PCI order there).
arch_root := if arch_name == "arm64" { "root=LABEL=burrow-root " } else { "" }
# One entry-point list for every architecture's build.
entries := "src/main.ts src/pid1.ts src/cli.ts src/modes/paravisor/modules-worker.ts src/memory/lane-worker.ts"
build_flags := "--compile --bytecode --format=esm --minify-syntax --no-compile-autoload-dotenv --no-compile-autoload-bunfig"

default:
    @{{just_executable()}} --list

# Install the Debian packages burrow needs on the host (only the missing ones).
deps:
    ARCH={{quote(arch_name)}} scripts/deps.sh

# The arm64 cross toolchain, libraries, headers and QEMU (what `just test`'s arm64 boots need).
deps-arm64:
    ARCH=arm64 scripts/deps.sh

# Compile burrow into one executable: dist/burrow (bytecode, ESM; never stripped).
build:
    mkdir -p dist
    {{bun}} build {{entries}} {{build_flags}} --outfile dist/burrow
    @if [ "{{arch_name}}" = arm64 ]; then {{just_executable()}} build-arm64; fi

# The arm64 guest's burrow, cross-compiled: dist/arm64/burrow (runtime: npm's @oven/bun-linux-aarch64).
build-arm64:
    mkdir -p dist/arm64
    {{bun}} build {{entries}} {{build_flags}} --target=bun-linux-aarch64 --outfile dist/arm64/burrow

# Debian's linux-image-amd64 kernel under build/kernel/ (vmlinuz + lib/modules/<release>/), cached.
kernel:
    scripts/fetch-kernel.sh build/kernel
    @if [ "{{arch_name}}" = arm64 ]; then {{just_executable()}} kernel-arm64; fi

# Debian's linux-image-arm64 kernel under build/kernel-arm64/, cached.
kernel-arm64:
    scripts/fetch-kernel.sh build/kernel-arm64 arm64

# The microVM kernel built from kernel-config/ (cached by the fragments' hash); ARCH=arm64 also builds the arm64 one.
kernel-micro:
    kernel-config/build.sh build/kernel-micro x86_64
    @if [ "{{arch_name}}" = arm64 ]; then {{just_executable()}} kernel-micro-arm64; fi

# The arm64 microVM kernel, cross-compiled: build/kernel-micro-arm64/vmlinuz (an uncompressed Image).
kernel-micro-arm64:
    kernel-config/build.sh build/kernel-micro-arm64 arm64

# The boot image: dist/boot.ext4 (micro kernel) or dist/initramfs.img (KERNEL=debian); ARCH=arm64: under dist/arm64/.
image: build
    @if [ "{{KERNEL}}" = micro ]; then {{just_executable()}} kernel-micro; else {{just_executable()}} kernel; fi
    dist/burrow image {{image_flags}} --out {{boot_image}}

# The demo root disk: dist/rootfs.ext4 with a guest agent at /usr/local/bin/guest-agent.
rootfs:
    @if [ "{{arch_name}}" = arm64 ]; then {{just_executable()}} rootfs-arm64; else scripts/make-rootfs.sh dist/rootfs.ext4; fi

# A substitution in a command's VAR= prefix cannot fail the line; assigned on its own first, it does, after fetch-busybox's message.
# The arm64 demo root disk: dist/arm64/rootfs.ext4 with Debian's busybox-static:arm64 (unpacked, not installed).
rootfs-arm64:
    busybox="$(scripts/fetch-busybox.sh build/busybox-arm64 arm64)" && BUSYBOX="$busybox" scripts/make-rootfs.sh dist/arm64/rootfs.ext4

# Build everything and boot the demo microVM in QEMU (TCG); the guest agent reports what it sees.
boot: deps image rootfs
    dist/burrow run --kernel {{kernel_dir}}/vmlinuz {{boot_media}} --disk {{rootfs_img}} --port demo.port --port burrow.log=/tmp/burrow-demo-port.log --mem 512M --timeout 600 --append "{{arch_root}}burrow.zram=25% -- hello from the kernel command line"

# The images the boot tests use, whatever KERNEL says: dist/test/initramfs-{micro,debian}.img.
test-images: build kernel kernel-micro
    mkdir -p dist/test
    dist/burrow image --kernel-dir none --out dist/test/initramfs-micro.img
    dist/burrow image --kernel-dir build/kernel --out dist/test/initramfs-debian.img

# The arm64 boot test's image: dist/test/initramfs-arm64.img (Debian's arm64 kernel's modules); the
# arm64 micro kernel for the boot-disk test (which writes its own boot disk).
test-images-arm64: build build-arm64 kernel-arm64 kernel-micro-arm64
    mkdir -p dist/test
    dist/burrow image --arch arm64 --kernel-dir build/kernel-arm64 --out dist/test/initramfs-arm64.img

# The OCI runtime: dist/burrow-oci (runc's command line, each container a microVM; docs/oci/), its
# kernel and boot disk beside it in dist/oci/. The guest is this host's architecture.
oci: build kernel-micro
    mkdir -p dist/oci
    cp build/kernel-micro/vmlinuz dist/oci/vmlinuz
    dist/burrow image --kernel-dir none --format ext4 --out dist/oci/boot.ext4
    install -m 0755 scripts/burrow-oci dist/burrow-oci

# The test suite: unit tests, namespace tests and QEMU boot tests.
test: deps deps-arm64 test-images test-images-arm64 rootfs rootfs-arm64 oci
    {{bun}} test --timeout 300000

# Knobs: RUNS=5 KERNELS=debian,micro COMPRESS=none (arm64 rows: ARCH=arm64 KERNELS=arm64,arm64-micro)
# Side-by-side boot benchmark: burrow vs a busybox-script init, on Debian's and the micro kernel.
bench: deps build kernel kernel-micro rootfs
    {{bun}} bench/run.ts --runs {{env_var_or_default("RUNS", "5")}} --kernels {{env_var_or_default("KERNELS", "debian,micro")}} --compress {{env_var_or_default("COMPRESS", "none")}}

# Snapshot forms side by side: save, restore to agent, 1/4/16 clones' time and PSS, 64 MiB vs 1 GiB touched: bench/results/snapshots.md.
bench-snapshots: build test-images rootfs
    {{bun}} bench/snapshots.ts --runs {{env_var_or_default("RUNS", "5")}}

# Redraw the bench pictures from saved results (no boots): bench/results/latest.svg, latest-boot.svg.
bench-draw:
    {{bun}} bench/draw.ts

# One boot of the demo microVM for the boot-timeline picture: bench/results/latest-boot.json and .svg.
bench-boot: build kernel-micro image rootfs
    {{bun}} bench/boot-once.ts

# Partition validator timing: generated descriptions of 10^3..10^6 ranges, valid and with one fault at the end.
bench-partition:
    {{bun}} bench/partition.ts

# Knobs: RUNS=3
# What the paravisor PID 1 costs while its worker runs: busybox init vs burrow (initramfs, boot disk).
bench-paravisor: deps build kernel-micro
    {{bun}} bench/paravisor.ts --runs {{env_var_or_default("RUNS", "3")}}

# Knobs: RUNS=5
# A graceful stop of a supervised guest: SIGINT to burrow run → QEMU exit (bench/results/stop.md).
bench-stop: deps build kernel-micro test-images rootfs
    {{bun}} bench/stop.ts --runs {{env_var_or_default("RUNS", "5")}}

# Knobs: RUNS=5
# The control channel against qemu-guest-agent and the bare virtio-serial port: exec round trip, stdout and file throughput, 64 sessions, the supervisor's RSS, idle wake-ups, pool hand-out (bench/results/exec.md, exec.json).
bench-exec: build test-images rootfs
    {{bun}} bench/exec.ts --runs {{env_var_or_default("RUNS", "5")}}

# Knobs: RUNS=5
# burrow-oci against runc under Podman (`podman run … true`, spawn → first output line; the template restore's phases, QEMU's spawn → the container's process; an idle container's host PSS; a host ↔ container stream on Podman's bridge, beside the same guest on a plain tap), and the container root's share read in the guest: 9p cache=loose and cache=mmap, virtio-fs, the VM's own ext4 disk, cold and warm (bench/results/oci.md, oci.json). Some parts alone: bun bench/oci.ts --runs N --only idle,net (the parts: podman, restore, idle, net, shares; those not run keep their sections from oci.json).
bench-oci: deps oci rootfs
    {{bun}} bench/oci.ts --runs {{env_var_or_default("RUNS", "5")}}

# The mshv simulator kernel module (paravisor memory tests): test/fixtures/mshv-sim/out/mshv_sim.ko.
sim:
    test/fixtures/mshv-sim/build.sh

# Type-check.
check:
    node_modules/.bin/tsc --noEmit -p .
