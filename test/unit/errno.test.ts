import { describe, expect, test } from "bun:test";
import { errnoName, errnoValue, SysError } from "../../src/sys/errno";
import * as sys from "../../src/sys";

describe("errno mapping", () => {
  test("names match the Linux numbers", () => {
    expect(errnoName(1)).toBe("EPERM");
    expect(errnoName(2)).toBe("ENOENT");
    expect(errnoName(16)).toBe("EBUSY");
    expect(errnoName(17)).toBe("EEXIST");
    expect(errnoName(22)).toBe("EINVAL");
    expect(errnoName(38)).toBe("ENOSYS");
    expect(errnoName(95)).toBe("EOPNOTSUPP");
    expect(errnoName(110)).toBe("ETIMEDOUT");
    expect(errnoName(125)).toBe("ECANCELED");
    expect(errnoName(126)).toBe("ENOKEY");
    expect(errnoName(133)).toBe("EHWPOISON");
    expect(errnoName(999)).toBe("E999");
    expect(errnoValue("ENODEV")).toBe(19);
  });

  test("a failing libc call throws SysError with the call, the path and the errno name", () => {
    let caught: unknown;
    try {
      sys.open("/nonexistent/burrow-test");
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SysError);
    const error = caught as SysError;
    expect(error.call).toBe("open");
    expect(error.code).toBe("ENOENT");
    expect(error.message).toBe('open(path="/nonexistent/burrow-test") failed: ENOENT (no such file or directory)');
  });

  test("errno is read per call, not stale", () => {
    expect(() => sys.close(987654)).toThrow(/close\(fd=987654\) failed: EBADF/);
    expect(() => sys.mkdir("/proc/burrow-cannot-exist")).toThrow(/ENOENT|EACCES|EPERM/);
    expect(() => sys.umount2("/nonexistent-burrow")).toThrow(/umount2\(target="\/nonexistent-burrow", flags=0\) failed: (ENOENT|EPERM)/);
  });

  test("working calls return real values", () => {
    expect(sys.getpid()).toBe(process.pid);
    expect(sys.uname().sysname).toBe("Linux");
    const limit = sys.prlimit(sys.Rlimit.NOFILE);
    expect(limit.soft).toBeGreaterThan(0n);
    expect(sys.clockNs()).toBeGreaterThan(0n);
    const fd = sys.open("/proc/self/stat");
    const buffer = new Uint8Array(64);
    expect(sys.read(fd, buffer)).toBeGreaterThan(0);
    sys.close(fd);
    const address = sys.mmap(0, 4096, sys.Prot.READ | sys.Prot.WRITE, sys.MapFlags.PRIVATE | sys.MapFlags.ANONYMOUS);
    new Uint8Array(sys.view(address, 4096))[10] = 42;
    expect(new Uint8Array(sys.view(address, 4096))[10]).toBe(42);
    sys.munmap(address, 4096);
  });
});
