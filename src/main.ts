// burrow: one executable. As PID 1 it boots the machine whatever argv says; otherwise it is a
// CLI. Each side is its own entry point of the compiled executable (the Justfile's build line),
// loaded by path at run time: PID 1 never loads the CLI's code (citty, the image builder, the
// QEMU launcher), and a smaller module loads faster under emulation (measured ~70 ms under TCG).
function entry(name: string): string {
  return Bun.isStandaloneExecutable ? `/$bunfs/root/${name}.js` : new URL(`./${name}.ts`, import.meta.url).href;
}

if (process.pid === 1) {
  const { runInit } = (await import(entry("pid1"))) as typeof import("./pid1");
  await runInit();
} else {
  const { cli } = (await import(entry("cli"))) as typeof import("./cli");
  process.exitCode = await cli(process.argv.slice(2));
}

export {};
