import { expect } from "bun:test";
import { processAlive } from "../../src/host/vm-registry";

/** The pid of a process that has exited (and was reaped): no owner can be behind it. */
export function deadPid(): number {
  const child = Bun.spawnSync(["true"]);
  expect(processAlive(child.pid)).toBe(false);
  return child.pid;
}
