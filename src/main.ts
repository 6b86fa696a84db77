// burrow: one executable. As PID 1 it boots the machine whatever argv says; otherwise it is a
// CLI. Only the path taken is loaded: PID 1 never evaluates the CLI's code (citty, the image
// builder, the QEMU launcher), which costs real time under emulation.
if (process.pid === 1) {
  const { runInit } = await import("./boot/pid1");
  await runInit();
} else {
  const { cli } = await import("./cli");
  process.exitCode = await cli(process.argv.slice(2));
}

export {};
