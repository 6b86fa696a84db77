// `burrow run` as a separate process (the CLI, as a user starts it), its console collected, for
// what only a real process shows: its own signal handling and exit code.
import { BURROW } from "./artifacts";

export interface CliRun {
  child: ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">>;
  /** The console (burrow run's stdout) so far. */
  readonly output: string;
  /** Resolves true once the console matched `pattern`, false after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<boolean>;
  /** Send `signal`; resolves with the exit code, the ms it took and the whole console once the run ended. */
  stop(signal: NodeJS.Signals): Promise<{ code: number; ms: number; output: string; stderr: string }>;
}

export function startCliRun(args: string[]): CliRun {
  const child = Bun.spawn([BURROW, "run", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let output = "";
  const decoder = new TextDecoder();
  const reader = (async () => {
    for await (const chunk of child.stdout) output += decoder.decode(chunk, { stream: true });
  })();
  return {
    child,
    get output() {
      return output;
    },
    async waitFor(pattern, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output) && Date.now() < deadline) await Bun.sleep(20);
      return pattern.test(output);
    },
    async stop(signal) {
      const started = performance.now();
      child.kill(signal);
      const code = await child.exited;
      const ms = performance.now() - started;
      await reader;
      return { code, ms, output, stderr: await new Response(child.stderr).text() };
    },
  };
}
