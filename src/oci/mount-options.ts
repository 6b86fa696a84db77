// config.json's mount option strings → mount(2)'s flags, its data string and the propagation to
// set afterwards. One parser: the host checks a bundle's mounts with it at create, the guest
// applies them with it. The words and what they do follow runc's table (libcontainer/specconv).
import { MountFlags } from "../sys/constants";

export interface MountOptions {
  /** mount(2) flags: RDONLY, NOSUID, NODEV, NOEXEC, the atime ones, BIND|REC for bind/rbind, REMOUNT. */
  flags: number;
  /** What the filesystem parses itself (mode=, size=, newinstance, …), comma-joined; "" for none. */
  data: string;
  /** PRIVATE, SLAVE, SHARED or UNBINDABLE (| REC for the r- forms), set by a second mount(2) call; null: left alone. */
  propagation: number | null;
  bind: boolean;
  recursive: boolean;
  /** Words burrow knows and deliberately does not apply (tmpcopyup, SELinux relabel requests): the caller says so. */
  ignored: string[];
  /** One phrase per word that cannot be applied: the caller refuses the mount. */
  problems: string[];
}

const {
  RDONLY, NOSUID, NODEV, NOEXEC, SYNCHRONOUS, REMOUNT, MANDLOCK, DIRSYNC, NOSYMFOLLOW, NOATIME, NODIRATIME,
  BIND, REC, UNBINDABLE, PRIVATE, SLAVE, SHARED, RELATIME, STRICTATIME, LAZYTIME,
} = MountFlags;

/** A word that sets (clear: false) or clears (clear: true) one flag. */
const FLAG_WORDS: ReadonlyMap<string, { clear: boolean; flag: number }> = new Map([
  ["defaults", { clear: false, flag: 0 }],
  ["ro", { clear: false, flag: RDONLY }],
  ["rw", { clear: true, flag: RDONLY }],
  ["nosuid", { clear: false, flag: NOSUID }],
  ["suid", { clear: true, flag: NOSUID }],
  ["nodev", { clear: false, flag: NODEV }],
  ["dev", { clear: true, flag: NODEV }],
  ["noexec", { clear: false, flag: NOEXEC }],
  ["exec", { clear: true, flag: NOEXEC }],
  ["sync", { clear: false, flag: SYNCHRONOUS }],
  ["async", { clear: true, flag: SYNCHRONOUS }],
  ["dirsync", { clear: false, flag: DIRSYNC }],
  ["mand", { clear: false, flag: MANDLOCK }],
  ["nomand", { clear: true, flag: MANDLOCK }],
  ["noatime", { clear: false, flag: NOATIME }],
  ["atime", { clear: true, flag: NOATIME }],
  ["nodiratime", { clear: false, flag: NODIRATIME }],
  ["diratime", { clear: true, flag: NODIRATIME }],
  ["relatime", { clear: false, flag: RELATIME }],
  ["norelatime", { clear: true, flag: RELATIME }],
  ["strictatime", { clear: false, flag: STRICTATIME }],
  ["nostrictatime", { clear: true, flag: STRICTATIME }],
  ["lazytime", { clear: false, flag: LAZYTIME }],
  ["nolazytime", { clear: true, flag: LAZYTIME }],
  ["nosymfollow", { clear: false, flag: NOSYMFOLLOW }],
  ["symfollow", { clear: true, flag: NOSYMFOLLOW }],
  ["remount", { clear: false, flag: REMOUNT }],
]);

const PROPAGATION_WORDS: ReadonlyMap<string, number> = new Map([
  ["private", PRIVATE],
  ["rprivate", PRIVATE | REC],
  ["slave", SLAVE],
  ["rslave", SLAVE | REC],
  ["shared", SHARED],
  ["rshared", SHARED | REC],
  ["unbindable", UNBINDABLE],
  ["runbindable", UNBINDABLE | REC],
]);

/**
 * Bare words a filesystem parses itself: devpts's newinstance, tmpfs's inode32/inode64 and
 * noswap, cgroup2's nsdelegate and memory_recursiveprot. key=value words always go to data.
 */
const DATA_WORDS: ReadonlySet<string> = new Set(["newinstance", "inode32", "inode64", "noswap", "nsdelegate", "memory_recursiveprot", "favordynmods"]);

/**
 * Words of the runtimes' own (crun/runc extensions, Podman's relabel requests) that burrow does
 * not carry out: tmpcopyup (copy the image's files into a new tmpfs), z/Z (SELinux relabel), the
 * copy-up switches. Reported by the caller, never silently dropped.
 */
const IGNORED_WORDS: ReadonlySet<string> = new Set(["tmpcopyup", "notmpcopyup", "copy-symlink", "nocopyup", "z", "Z", "U"]);

/**
 * Recursive mount attributes (rro, rnosuid, …: mount_setattr with AT_RECURSIVE) act like their
 * plain word here: a mount the guest makes has no submounts yet when its flags are set, and a
 * mount listed later under it gets its own options.
 */
function recursiveAttribute(word: string): string | null {
  if (!word.startsWith("r") || word.length < 3) return null;
  const plain = word.slice(1);
  return FLAG_WORDS.has(plain) && !["defaults", "remount", "sync", "async", "dirsync", "mand", "nomand", "lazytime", "nolazytime"].includes(plain) ? plain : null;
}

export function parseMountOptions(options: readonly string[]): MountOptions {
  const result: MountOptions = { flags: 0, data: "", propagation: null, bind: false, recursive: false, ignored: [], problems: [] };
  const data: string[] = [];
  for (const option of options) {
    if (option === "") {
      result.problems.push("an empty option");
      continue;
    }
    // The data string is comma-joined: a comma inside one word would smuggle in a second option.
    if (option.includes(",")) {
      result.problems.push(`${JSON.stringify(option)} holds a comma (give each option as its own string)`);
      continue;
    }
    const word = recursiveAttribute(option) ?? option;
    const flag = FLAG_WORDS.get(word);
    if (flag) {
      result.flags = flag.clear ? result.flags & ~flag.flag : result.flags | flag.flag;
      continue;
    }
    if (option === "bind" || option === "rbind") {
      result.bind = true;
      result.recursive = result.recursive || option === "rbind";
      result.flags |= BIND | (option === "rbind" ? REC : 0);
      continue;
    }
    const propagation = PROPAGATION_WORDS.get(option);
    if (propagation !== undefined) {
      // The last one given wins, as with mount(8).
      result.propagation = propagation;
      continue;
    }
    if (IGNORED_WORDS.has(option)) {
      result.ignored.push(option);
      continue;
    }
    if (option.includes("=") && !option.startsWith("=")) {
      data.push(option);
      continue;
    }
    if (DATA_WORDS.has(option)) {
      data.push(option);
      continue;
    }
    if (option === "idmap" || option === "ridmap") {
      result.problems.push(`${option}: idmapped mounts are not supported`);
      continue;
    }
    result.problems.push(`unknown mount option ${JSON.stringify(option)}`);
  }
  result.data = data.join(",");
  return result;
}

/** The flags as words (ro,nosuid,…), for lines that say what was mounted. */
export function describeMountFlags(flags: number): string {
  const words: string[] = [flags & RDONLY ? "ro" : "rw"];
  for (const [word, { clear, flag }] of FLAG_WORDS) {
    if (!clear && flag !== 0 && flag !== RDONLY && (flags & flag) !== 0) words.push(word);
  }
  if (flags & BIND) words.push(flags & REC ? "rbind" : "bind");
  return words.join(",");
}
