// `just bench-partition`: how long the partition validator takes on large descriptions, valid and
// with one fault placed at the very end (the worst case for each check: everything before it is
// checked first). Usage: bun bench/partition.ts [--sizes 1000,10000,100000,1000000] [--runs 3]
import { parseArgs } from "node:util";
import { parsePartition, PartitionError } from "../src/memory/partition";
import { hex } from "../src/memory/ranges";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,10000,100000,1000000" },
    runs: { type: "string", default: "3" },
  },
});
const sizes = values.sizes!.split(",").map(Number);
const runs = Number(values.runs);

const UNIT = 0x8000; // 32 KiB: aligned enough for the hardware-isolated bitmaps
type JsonRange = { start: string; end: string; vnode?: number };
type Description = Record<string, unknown> & { ram: JsonRange[]; sharedPool: JsonRange[]; vtl2Ram: JsonRange[]; accepted: JsonRange[]; completeLayout: JsonRange[] };

/** An SNP description with `total` ranges over ram, sharedPool, vtl2Ram, accepted and completeLayout, as JSON would give them. */
function generate(total: number): Description {
  const ram: JsonRange[] = [];
  const sharedPool: JsonRange[] = [];
  const vtl2Ram: JsonRange[] = [];
  const accepted: JsonRange[] = [];
  const completeLayout: JsonRange[] = [];
  let cursor = 0;
  // Per 10 ranges: 3 ram (each with an accepted head and a completeLayout entry: 9), 1 shared pool or VTL2.
  for (let i = 0; ram.length * 3 + sharedPool.length * 2 + vtl2Ram.length < total; i++) {
    const start = cursor;
    const end = start + UNIT * (2 + (i % 5));
    cursor = end + UNIT * (i % 3); // some ranges touch, some have holes
    const range = { start: hex(start), end: hex(end) };
    if (i % 4 < 3) {
      ram.push({ ...range, vnode: i % 4 });
      accepted.push({ start: hex(start), end: hex(start + UNIT) });
      completeLayout.push({ ...range, vnode: i % 4 });
    } else if (i % 8 === 3) {
      sharedPool.push(range);
      completeLayout.push(range);
    } else {
      vtl2Ram.push(range);
    }
  }
  return { isolation: "snp", vpCount: 64, vtom: hex(2 ** 45), ram, sharedPool, vtl2Ram, accepted, completeLayout };
}

/** One fault at the end of the description, per check. */
const faults: Record<string, (d: Description) => Description> = {
  valid: (d) => d,
  "ram overlap (sweep in list)": (d) => {
    const ram = [...d.ram];
    ram[ram.length - 1] = { ...ram[ram.length - 1]!, start: ram[ram.length - 2]!.start };
    return { ...d, ram };
  },
  "sharedPool ∩ ram": (d) => {
    const last = d.ram[d.ram.length - 1]!;
    return { ...d, sharedPool: [...d.sharedPool, { start: last.start, end: last.end }] };
  },
  "vtl2Ram ∩ sharedPool": (d) => {
    // A new pool range past everything else, and VTL2 RAM on top of it: both lists stay sorted.
    const clash = { start: hex(2 ** 44), end: hex(2 ** 44 + UNIT) };
    return { ...d, sharedPool: [...d.sharedPool, clash], completeLayout: [...d.completeLayout, clash], vtl2Ram: [...d.vtl2Ram, clash] };
  },
  "ram ⊄ completeLayout": (d) => ({ ...d, completeLayout: d.completeLayout.slice(0, -1) }),
  "completeLayout ⊄ ram ∪ pool": (d) => ({ ...d, completeLayout: [...d.completeLayout, { start: hex(2 ** 44), end: hex(2 ** 44 + UNIT) }] }),
  "vtl2Ram above VTOM": (d) => ({ ...d, vtl2Ram: [...d.vtl2Ram, { start: hex(2 ** 45), end: hex(2 ** 45 + UNIT) }] }),
};

function time(description: Description): { ms: number; outcome: string } {
  let best = Infinity;
  let outcome = "";
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    try {
      parsePartition(description);
      outcome = "accepted";
    } catch (error) {
      if (!(error instanceof PartitionError)) throw error;
      outcome = error.message.length > 60 ? `${error.message.slice(0, 60)}…` : error.message;
    }
    best = Math.min(best, performance.now() - started);
  }
  return { ms: best, outcome };
}

const names = Object.keys(faults);
const width = Math.max(...names.map((name) => name.length));
console.log(`partition validation, best of ${runs} (ms); the fault is always at the end of its list`);
console.log(["case".padEnd(width), ...sizes.map((size) => `n=${size.toExponential().replace("e+", "e")}`.padStart(10))].join("  "));
const outcomes = new Map<string, string>();
const generated = new Map(sizes.map((size) => [size, generate(size)]));
for (const name of names) {
  const cells: string[] = [];
  for (const size of sizes) {
    const { ms, outcome } = time(faults[name]!(generated.get(size)!));
    cells.push(ms.toFixed(1).padStart(10));
    outcomes.set(name, outcome);
  }
  console.log([name.padEnd(width), ...cells].join("  "));
}
console.log("\noutcome at the largest size:");
for (const name of names) console.log(`  ${name.padEnd(width)}  ${outcomes.get(name)}`);
