// `import … from "burrow"` resolves, through package.json's exports, to src/api.ts: what a sandbox
// builder on Bun imports from a checkout (Bun resolves a package's own name through its exports).
import { expect, test } from "bun:test";
import { join } from "node:path";
import * as api from "burrow";
import { boot } from "../../src/api/boot";
import { BootError, ChannelClosedError, GuestError, SpawnError, VmEndedError } from "../../src/api/errors";
import { Pool } from "../../src/api/pool";
import { restore } from "../../src/api/restore";
import { Vm } from "../../src/api/vm";

test("the package name resolves to src/api.ts and its exports", () => {
  expect(Bun.resolveSync("burrow", import.meta.dir)).toBe(join(import.meta.dir, "../../src/api.ts"));
  expect(api.boot).toBe(boot);
  expect(api.restore).toBe(restore);
  expect(api.Pool).toBe(Pool);
  expect(api.Vm).toBe(Vm);
  expect([api.BootError, api.VmEndedError, api.GuestError, api.SpawnError, api.ChannelClosedError]).toEqual([BootError, VmEndedError, GuestError, SpawnError, ChannelClosedError]);
});

test("boot() refuses a bad option with one BootError before QEMU starts", async () => {
  await expect(api.boot({ mem: "lots" })).rejects.toThrow(new BootError(`boot: --mem must be a size like 512M or 2G (K/M/G/T; no suffix: MiB) from 1M to 4T, got "lots"`));
  await expect(api.boot({ append: "burrow.supervise=0" })).rejects.toThrow("boot: the API drives the guest's supervisor, which burrow.supervise=0 (or paravisor mode) leaves out");
  await expect(api.boot({ kernel: "/nonexistent/vmlinuz", initrd: null })).rejects.toThrow("boot: not found: kernel /nonexistent/vmlinuz");
  await expect(api.restore("/nonexistent/snapshot")).rejects.toBeInstanceOf(BootError);
});
