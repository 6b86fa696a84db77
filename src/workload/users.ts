// A user request ("NAME", "UID", "UID:GID") resolved against the texts of the new root's
// /etc/passwd and /etc/group, as getpwnam + initgroups would: pure, so the files are arguments.
// Malformed lines are skipped (a hand-edited image must not stop the lookup of a good line).
import { MAX_ID, parseId } from "../config/workload";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string | null;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** The supplementary groups setgroups() gets: the primary gid first, then the memberships. */
  groups: number[];
  name: string | null;
  home: string | null;
}

export type UserResult = { ok: true; user: ResolvedUser } | { ok: false; error: string };

/** NGROUPS_MAX: setgroups() refuses more. */
const MAX_GROUPS = 65536;

function lines(text: string): string[][] {
  return text
    .split("\n")
    .map((line) => line.replace(/\r$/, ""))
    // Comments, blank lines and NIS "+"/"-" compat entries name nobody.
    .filter((line) => line !== "" && !/^[#+-]/.test(line))
    .map((line) => line.split(":"));
}

/** name:password:uid:gid:gecos:home:shell — the fields after gid may be missing. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const [name, , uidText, gidText, , home] of lines(text)) {
    const uid = parseId(uidText ?? "");
    const gid = parseId(gidText ?? "");
    if (!name || uid === null || gid === null) continue;
    entries.push({ name, uid, gid, home: home?.startsWith("/") ? home : null });
  }
  return entries;
}

/** name:password:gid:member,member,… */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const [name, , gidText, members] of lines(text)) {
    const gid = parseId(gidText ?? "");
    if (!name || gid === null || members === undefined) continue;
    entries.push({ name, gid, members: members.split(",").map((member) => member.trim()).filter(Boolean) });
  }
  return entries;
}

/** The primary gid, then every group that lists `name` as a member, each once. */
function groupsOf(name: string | null, gid: number, groups: readonly GroupEntry[]): number[] {
  const found = new Set([gid]);
  if (name !== null) for (const group of groups) if (group.members.includes(name)) found.add(group.gid);
  return [...found];
}

function withGroups(user: Omit<ResolvedUser, "groups">, groups: readonly GroupEntry[]): UserResult {
  const list = groupsOf(user.name, user.gid, groups);
  if (list.length > MAX_GROUPS) return { ok: false, error: `user ${user.name ?? user.uid}: member of ${list.length} groups, more than setgroups() takes (${MAX_GROUPS})` };
  return { ok: true, user: { ...user, groups: list } };
}

/**
 * Resolve "NAME", "UID" or "UID:GID". passwd/group are the files' texts, null when the file is
 * absent: a NAME then cannot resolve, a number still does (gid = uid, no memberships).
 */
export function resolveUser(request: string, passwdText: string | null, groupText: string | null, passwdPath = "/etc/passwd"): UserResult {
  const passwd = parsePasswd(passwdText ?? "");
  const groups = parseGroup(groupText ?? "");
  const [first = "", second, ...rest] = request.split(":");
  if (rest.length > 0) return { ok: false, error: `user ${JSON.stringify(request)}: expected NAME, UID or UID:GID` };
  if (/^\d+$/.test(first)) {
    const uid = parseId(first);
    const gid = second === undefined ? undefined : parseId(second);
    if (uid === null || gid === null) return { ok: false, error: `user ${JSON.stringify(request)}: ids are whole numbers from 0 to ${MAX_ID}` };
    const entry = passwd.find((candidate) => candidate.uid === uid);
    return withGroups({ uid, gid: gid ?? entry?.gid ?? uid, name: entry?.name ?? null, home: entry?.home ?? null }, groups);
  }
  if (second !== undefined) return { ok: false, error: `user ${JSON.stringify(request)}: expected NAME, UID or UID:GID` };
  const entry = passwd.find((candidate) => candidate.name === first);
  if (!entry) return { ok: false, error: `user ${JSON.stringify(first)} is not in ${passwdPath}${passwdText === null ? " (no such file)" : ""}` };
  return withGroups(entry, groups);
}
