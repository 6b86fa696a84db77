// The guest hardening rules as configuration: their names, whether each is on by default, and
// why. `burrow.harden=` switches them: a comma list of `name` (on), `-name` (off), `all`, `none`,
// applied left to right over the defaults. What each rule does is src/modes/microvm/harden.ts.
// None of them is a boundary against a root agent (root can mknod, chmod and remount again):
// they take away what an unprivileged workload the agent starts could otherwise use.

/** tiny-init's cap: enough for an agent's scratch files, too few for an inode-exhaustion attack. */
export const TMP_INODES = 16384;

export interface HardenRuleInfo {
  name: HardenRuleName;
  on: boolean;
  why: string;
}

export type HardenRuleName = "dev-mem" | "random-mode" | "proc-hidepid" | "tmp-limits" | "cgroupfs";

export const HARDEN_RULES: readonly HardenRuleInfo[] = [
  {
    name: "dev-mem",
    on: true,
    why: "/dev/mem, /dev/kmem and /dev/port read and write physical memory and I/O ports; no agent needs them",
  },
  {
    name: "random-mode",
    on: true,
    why: "/dev/random and /dev/urandom 0644: everyone still reads them; only root may mix data into the pool (writes are never credited, so this is defence in depth)",
  },
  {
    name: "proc-hidepid",
    // On by default because it costs a root agent nothing: hidepid does not hide from root
    // (CAP_SYS_PTRACE passes the check). It hides other users' processes (command lines,
    // environments) from the unprivileged workloads an agent starts.
    on: true,
    why: "/proc hidepid=2: users other than root see only their own processes; root (the agent) still sees all",
  },
  {
    name: "tmp-limits",
    // Off by default: 16384 inodes can break an agent that unpacks a large tree into /tmp.
    on: false,
    why: `/tmp nosuid,nodev, size= half of RAM (page-aligned), nr_inodes=${TMP_INODES}: one writer cannot exhaust inodes; the 6.1 kernel's tmpfs has no noswap or quota options, so neither is set`,
  },
  {
    name: "cgroupfs",
    // Off by default, i.e. no cgroupfs: the agent cannot move itself or its children between
    // groups or change their limits unless asked for.
    on: false,
    why: "mount cgroup2 on /sys/fs/cgroup (nsdelegate); off unless asked, so no cgroup interface is exposed",
  },
];

const RULE_NAMES: readonly string[] = HARDEN_RULES.map((rule) => rule.name);

/** Rule name → on/off, only for rules named on the command line (a plain object: `burrow cmdline` shows it). */
export type HardenSwitches = Readonly<Record<string, boolean>>;

/**
 * One `burrow.harden=` value → switches over the current ones (never throws). Unknown names and
 * empty items are problems; the other items still apply.
 */
export function parseHardenSwitches(value: string | null, current: HardenSwitches = {}): { switches: Record<string, boolean>; problems: string[] } {
  const switches: Record<string, boolean> = { ...current };
  const problems: string[] = [];
  const items = (value ?? "").split(",").map((item) => item.trim());
  if (items.every((item) => item === "")) return { switches, problems: [`expected a comma list of rules (${RULE_NAMES.join(", ")}), -rule, all or none`] };
  for (const item of items) {
    if (item === "all" || item === "none") {
      for (const name of RULE_NAMES) switches[name] = item === "all";
      continue;
    }
    const off = item.startsWith("-");
    const name = off ? item.slice(1) : item;
    if (!RULE_NAMES.includes(name)) {
      problems.push(`unknown hardening rule ${JSON.stringify(item.slice(0, 40))} (rules: ${RULE_NAMES.join(", ")})`);
      continue;
    }
    switches[name] = !off;
  }
  return { switches, problems };
}

/** The rules that run: each rule's default, with the switches over it, in table order. */
export function enabledRules(switches: HardenSwitches): HardenRuleInfo[] {
  return HARDEN_RULES.filter((rule) => (Object.hasOwn(switches, rule.name) ? switches[rule.name] : rule.on));
}

