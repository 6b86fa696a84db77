// Which of an idle holder's mappings may lose their resident pages (src/oci/idle-pages.ts), read
// from a real holder's /proc/PID/smaps (test/fixtures/smaps/holder.smaps: burrow's executable, its
// heap, libc, anonymous memory; the executable's path renamed).
import { expect, test } from "bun:test";
import { readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { droppableMappings, dropIdleExecutablePages, parseSmaps } from "../../src/oci/idle-pages";

const EXECUTABLE = "/opt/burrow/dist/burrow";
const fixture = readFileSync(join(import.meta.dir, "../fixtures/smaps/holder.smaps"), "utf8");

test("every mapping is read with its bounds, permissions, path, Rss and Anonymous", () => {
  const mappings = parseSmaps(fixture);
  expect(mappings).toHaveLength(13);
  expect(mappings[0]).toEqual({ start: 0x200000, end: 0x1a38000, perms: "r--p", path: EXECUTABLE, rssKiB: 5664, anonymousKiB: 0 });
  expect(mappings.find((mapping) => mapping.path === "[heap]")).toMatchObject({ perms: "rw-p", rssKiB: 8, anonymousKiB: 8 });
  // A mapping with no path (anonymous memory) has an empty one.
  expect(mappings.find((mapping) => mapping.start === 0x40897e00000)).toMatchObject({ path: "", rssKiB: 6660, anonymousKiB: 6660 });
});

test("only the executable's read-only mappings without a private page are dropped: not its relocated data, not libc, not anonymous memory", () => {
  const droppable = droppableMappings(parseSmaps(fixture), EXECUTABLE);
  expect(droppable.map((mapping) => `${mapping.start.toString(16)} ${mapping.perms}`)).toEqual(["200000 r--p", "1a40000 r-xp"]);
  // The relocated read-only data (RELRO, 12 KiB written before it was made read-only) stays.
  expect(parseSmaps(fixture).find((mapping) => mapping.start === 0x684a000)).toMatchObject({ perms: "r--p", anonymousKiB: 12 });
  expect(droppable.reduce((sum, mapping) => sum + mapping.rssKiB, 0)).toBe(5664 + 20284);
});

test("another executable's path, or mappings with nothing resident, give nothing to drop", () => {
  expect(droppableMappings(parseSmaps(fixture), "/usr/bin/other")).toEqual([]);
  const idle = parseSmaps(fixture).map((mapping) => ({ ...mapping, rssKiB: 0 }));
  expect(droppableMappings(idle, EXECUTABLE)).toEqual([]);
});

test("this process drops its executable's clean pages: they leave its resident set and it runs on", () => {
  const executable = realpathSync("/proc/self/exe");
  const resident = () => droppableMappings(parseSmaps(readFileSync("/proc/self/smaps", "utf8")), executable).reduce((sum, mapping) => sum + mapping.rssKiB, 0);
  const before = resident();
  expect(before).toBeGreaterThan(1024);
  const dropped = dropIdleExecutablePages();
  expect(dropped).toBeGreaterThanOrEqual(before / 2);
  // What the test runs from here on faults back in; far less than was dropped.
  expect(resident()).toBeLessThan(before / 2);
});
