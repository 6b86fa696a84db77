// Host programs the builder runs (cc, depmod, mke2fs, debugfs, dumpe2fs). Always an argv array,
// never a shell string: paths from --add or --out reach these programs as single arguments,
// whatever characters they hold.
import { spawnSync } from "bun";
import { existsSync } from "node:fs";
import { describeError } from "../errors";
import { ImageError } from "./error";

/** A system tool from /usr/sbin or /sbin (often missing from a user's PATH), else from PATH. */
export function systemTool(name: string): string {
  return [`/usr/sbin/${name}`, `/sbin/${name}`].find(existsSync) ?? Bun.which(name) ?? name;
}

export interface ToolRun {
  /** How the failure line names the run, e.g. "mke2fs -d /tmp/x". */
  what: string;
  /** What to do about a failure, e.g. "install e2fsprogs: `just deps`". */
  hint?: string;
  env?: Record<string, string | undefined>;
}

/** Runs argv to completion; its output, or an ImageError with its stderr folded onto one line. */
export function runTool(argv: string[], run: ToolRun): { stdout: string; stderr: string } {
  const hint = run.hint ? ` (${run.hint})` : "";
  let result;
  try {
    result = spawnSync(argv, { stdout: "pipe", stderr: "pipe", env: run.env ?? process.env });
  } catch (error) {
    throw new ImageError(`${run.what} failed: cannot run ${argv[0]}: ${describeError(error)}${hint}`);
  }
  if (result.exitCode !== 0) {
    const stderr = result.stderr.toString().trim().split("\n").map((line) => line.trim()).filter(Boolean).join("; ");
    throw new ImageError(`${run.what} failed: ${stderr || `exit ${result.exitCode}`}${hint}`);
  }
  return { stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}
