// burrow's system tables against the kernel's UAPI headers, for both architectures it runs on.
import { describe, expect, test } from "bun:test";
import { OpenFlags, OpenFlagsByArch, Syscalls, SyscallNumber, sysArch } from "../../src/sys/constants";
import { burrowTable, fixtureValues, headersPresent, headerValues, UAPI_ARCHES } from "../helpers/uapi";

describe("system tables per architecture", () => {
  for (const arch of UAPI_ARCHES) {
    test(`${arch}: every value matches the checked-in expectation`, () => {
      const table = burrowTable(arch);
      const expected = fixtureValues(arch);
      // Same key set: a value added to the tables must be added to the expectation too.
      expect(Object.keys(table).sort()).toEqual(Object.keys(expected).sort());
      expect(table).toEqual(expected);
    });

    const present = headersPresent(arch);
    if (!present) console.warn(`sys-uapi: no ${arch} kernel headers (linux-libc-dev${arch === "arm64" ? ":arm64" : ""}) or no cpp; comparing with test/fixtures/uapi/${arch}.json only`);
    test.skipIf(!present)(`${arch}: every value matches the kernel headers`, () => {
      const table = burrowTable(arch);
      const headers = headerValues(arch, Object.keys(table));
      expect(headers).toEqual(table);
      // The expectation used without headers is itself what the headers say.
      expect(fixtureValues(arch)).toEqual(headers);
    });
  }

  test("the architectures differ where the kernel says they do", () => {
    expect(OpenFlagsByArch.arm64.DIRECTORY).not.toBe(OpenFlagsByArch.x86_64.DIRECTORY);
    expect(OpenFlagsByArch.arm64.NOFOLLOW).toBe(0o100000);
    expect(SyscallNumber.arm64.finit_module).toBe(273);
    expect(SyscallNumber.x86_64.finit_module).toBe(313);
  });

  test("the table in use is this process's architecture's", () => {
    const arch = sysArch();
    expect(arch).toBe(process.arch === "x64" ? "x86_64" : "arm64");
    expect(OpenFlags).toBe(OpenFlagsByArch[arch]);
    expect(Syscalls).toBe(SyscallNumber[arch]);
  });

  test("an architecture without a table is refused by name", () => {
    expect(sysArch("x64")).toBe("x86_64");
    expect(sysArch("arm64")).toBe("arm64");
    expect(() => sysArch("riscv64")).toThrow(/x86_64 and arm64 only, not riscv64/);
  });
});
