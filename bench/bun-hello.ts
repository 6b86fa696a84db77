// The floor of any init written for Bun: a compiled program that only reports like the guest
// agent (its start and MemAvailable) and stops. `just bench` boots it beside burrow, so the part
// of burrow's cold boot that is Bun's own runtime start can be read off directly.
import { readFileSync } from "node:fs";

const uptime = readFileSync("/proc/uptime", "utf8").split(" ")[0];
const memAvailable = /MemAvailable:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? "0";
process.stdout.write(`agent: start uptime=${uptime}\nagent: meminfo MemAvailable=${memAvailable}\n`);
// PID 1 returning ends the VM (the kernel panics on init's exit, QEMU exits with -no-reboot).
