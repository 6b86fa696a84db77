# burrow — build, image, boot and test. `npx just --list` shows the recipes.
set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments := false

bun := justfile_directory() / "node_modules/.bin/bun"
# Which kernel to build images for and boot: micro (kernel-config/, drivers built in; the default)
# or debian (Debian's linux-image-amd64, drivers as modules).
KERNEL := env_var_or_default("KERNEL", "micro")
kernel_dir := if KERNEL == "micro" { "build/kernel-micro" } else { "build/kernel" }
# The fastest measured cold layout per kernel (bench/results): the micro kernel mounts an ext4 boot
# disk holding burrow and runs it in place (pages come in as Bun touches them); Debian's kernel
# needs its modules first, so it gets an initramfs.
boot_image := if KERNEL == "micro" { "dist/boot.ext4" } else { "dist/initramfs.img" }
image_flags := if KERNEL == "micro" { "--kernel-dir none --format ext4" } else { "--kernel-dir build/kernel" }
boot_media := if KERNEL == "micro" { "--boot-disk dist/boot.ext4" } else { "--initrd dist/initramfs.img" }

default:
    @{{just_executable()}} --list

# Install the Debian packages burrow needs on the host (only the missing ones).
deps:
    scripts/deps.sh

# Compile burrow into one executable: dist/burrow (bytecode, ESM; never stripped).
build:
    mkdir -p dist
    {{bun}} build src/main.ts src/boot/pid1.ts src/cli.ts src/modes/paravisor/modules-worker.ts --compile --bytecode --format=esm --minify-syntax --no-compile-autoload-dotenv --no-compile-autoload-bunfig --outfile dist/burrow

# Debian's linux-image-amd64 kernel under build/kernel/ (vmlinuz + lib/modules/<release>/), cached.
kernel:
    scripts/fetch-kernel.sh build/kernel

# The microVM kernel built from kernel-config/ (cached by the fragment's hash).
kernel-micro:
    kernel-config/build.sh build/kernel-micro

# The boot image: dist/boot.ext4 (micro kernel) or dist/initramfs.img (KERNEL=debian).
image: build
    @if [ "{{KERNEL}}" = micro ]; then {{just_executable()}} kernel-micro; else {{just_executable()}} kernel; fi
    dist/burrow image {{image_flags}} --out {{boot_image}}

# The demo root disk: dist/rootfs.ext4 with a guest agent at /usr/local/bin/guest-agent.
rootfs:
    scripts/make-rootfs.sh dist/rootfs.ext4

# Build everything and boot the demo microVM in QEMU (TCG); the guest agent reports what it sees.
boot: deps image rootfs
    dist/burrow run --kernel {{kernel_dir}}/vmlinuz {{boot_media}} --disk dist/rootfs.ext4 --port demo.port --port burrow.log=/tmp/burrow-demo-port.log --mem 512M --append "burrow.zram=25% -- hello from the kernel command line"

# The images the boot tests use, whatever KERNEL says: dist/test/initramfs-{micro,debian}.img.
test-images: build kernel kernel-micro
    mkdir -p dist/test
    dist/burrow image --kernel-dir none --out dist/test/initramfs-micro.img
    dist/burrow image --kernel-dir build/kernel --out dist/test/initramfs-debian.img

# The test suite: unit tests, namespace tests and QEMU boot tests.
test: deps test-images rootfs
    {{bun}} test --timeout 300000

# Knobs: RUNS=5 KERNELS=debian,micro COMPRESS=none
# Side-by-side boot benchmark: burrow vs a busybox-script init, on Debian's and the micro kernel.
bench: deps build kernel kernel-micro rootfs
    {{bun}} bench/run.ts --runs {{env_var_or_default("RUNS", "5")}} --kernels {{env_var_or_default("KERNELS", "debian,micro")}} --compress {{env_var_or_default("COMPRESS", "none")}}

# Partition validator timing: generated descriptions of 10^3..10^6 ranges, valid and with one fault at the end.
bench-partition:
    {{bun}} bench/partition.ts

# Knobs: RUNS=3
# What the paravisor PID 1 costs while its worker runs: busybox init vs burrow (initramfs, boot disk).
bench-paravisor: deps build kernel-micro
    {{bun}} bench/paravisor.ts --runs {{env_var_or_default("RUNS", "3")}}

# The mshv simulator kernel module (paravisor memory tests): test/fixtures/mshv-sim/out/mshv_sim.ko.
sim:
    test/fixtures/mshv-sim/build.sh

# Type-check.
check:
    node_modules/.bin/tsc --noEmit -p .
