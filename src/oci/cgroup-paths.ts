// linux.cgroupsPath as the engine's cgroup driver writes it → the container's cgroup, and where
// that cgroup is in each host hierarchy. runc 1.1's readings: cgroupfs takes a path (Podman
// "/libpod_parent/libpod-ID", containerd "/default/ID", Docker "/docker/ID"), absolute in every
// hierarchy or, relative, below runc's own cgroup in each; systemd takes "slice:prefix:name"
// (Podman "machine.slice:libpod:ID") for the scope <slice's path>/<prefix>-<name>.scope, a slice
// a-b.slice nesting as a.slice/a-b.slice. There is no systemd to ask here: the systemd layout is
// made as plain directories, as for cgroupfs. Pure.
import { posix } from "node:path";
import { type CgroupMounts, type Hierarchy, hierarchyKey, hierarchyName } from "./cgroup-mounts";

export type CgroupDriver = "cgroupfs" | "systemd";

export interface ContainerCgroup {
  /** The cgroup's path, "/"-separated, without a trailing "/". */
  path: string;
  /** runc's reading of a relative cgroupfs path: below burrow-oci's own cgroup in each hierarchy. */
  relative: boolean;
}

/** Where the container's cgroup is in one hierarchy. */
export interface CgroupDir {
  hierarchy: Hierarchy;
  /** Its path in the hierarchy ("/libpod_parent/libpod-ID"). */
  cgroup: string;
  /** The directory on the host (the hierarchy's mount point joined with the path below the mount's root). */
  dir: string;
}

export type Problem = { problem: string };
export const isProblem = (value: unknown): value is Problem => typeof value === "object" && value !== null && "problem" in value;

/** runc's default slice for a rootful container whose systemd cgroupsPath leaves the slice empty. */
export const DEFAULT_SLICE = "system.slice";

/** systemd's slice name → its cgroup path: "a-b.slice" → "/a.slice/a-b.slice", "-.slice" the root (runc's ExpandSlice). */
export function expandSlice(slice: string): string | Problem {
  const suffix = ".slice";
  if (!slice.endsWith(suffix) || slice.length <= suffix.length || slice.includes("/")) return { problem: `${JSON.stringify(slice)} is not a slice name (NAME.slice, no "/")` };
  const name = slice.slice(0, -suffix.length);
  if (name === "-") return "/";
  let path = "";
  let prefix = "";
  for (const component of name.split("-")) {
    // "a--b.slice" and "-a.slice" name no slice.
    if (component === "") return { problem: `${JSON.stringify(slice)} is not a slice name (an empty part between "-")` };
    path += `/${prefix}${component}${suffix}`;
    prefix += `${component}-`;
  }
  return path;
}

const badName = (name: string) => name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0");

/** linux.cgroupsPath (non-empty) under the driver → the container's cgroup, or why it cannot be one. */
export function readCgroupsPath(value: string, driver: CgroupDriver): ContainerCgroup | Problem {
  if (value.includes("\0")) return { problem: "holds a NUL byte" };
  if (driver === "systemd") {
    const parts = value.split(":");
    if (parts.length !== 3) return { problem: `expected "slice:prefix:name" for the systemd cgroup driver (--systemd-cgroup), got ${JSON.stringify(value.slice(0, 200))}` };
    const [slice, prefix, name] = parts as [string, string, string];
    const slicePath = expandSlice(slice === "" ? DEFAULT_SLICE : slice);
    if (isProblem(slicePath)) return slicePath;
    if (badName(name) || prefix.includes("/")) return { problem: `${JSON.stringify(value.slice(0, 200))}: the prefix and name must be names, not paths` };
    // A name that is a slice is the unit itself; anything else is PREFIX-NAME.scope.
    const unit = name.endsWith(".slice") ? name : `${prefix}-${name}.scope`;
    return { path: posix.join(slicePath, unit), relative: false };
  }
  const components = value.split("/").filter((component) => component !== "" && component !== ".");
  if (components.includes("..")) return { problem: `${JSON.stringify(value.slice(0, 200))} must not hold a .. component` };
  if (components.length === 0) return { problem: `${JSON.stringify(value)} is the root cgroup, which holds the whole host` };
  const relative = !value.startsWith("/");
  return { path: `${relative ? "" : "/"}${components.join("/")}`, relative };
}

/**
 * The container's cgroup in every hierarchy to join: its path there (below burrow-oci's own cgroup,
 * from /proc/self/cgroup, for a relative one) and the host directory; or why one cannot be placed.
 */
export function cgroupDirs(mounts: CgroupMounts, cgroup: ContainerCgroup, own: ReadonlyMap<string, string> | null): CgroupDir[] | Problem {
  const dirs: CgroupDir[] = [];
  for (const hierarchy of mounts.hierarchies) {
    let path = cgroup.path;
    if (cgroup.relative) {
      const base = own?.get(hierarchyKey(hierarchy));
      if (base === undefined) return { problem: `burrow-oci's own cgroup in the ${hierarchyName(hierarchy)} hierarchy is not in /proc/self/cgroup (a relative linux.cgroupsPath is read below it)` };
      path = posix.join(base, cgroup.path);
    }
    const { root, mountPoint } = hierarchy;
    if (root !== "/" && path !== root && !path.startsWith(`${root}/`)) {
      return { problem: `the cgroup ${path} is outside the part of the ${hierarchyName(hierarchy)} hierarchy mounted at ${mountPoint} (its ${root})` };
    }
    if (path === root) return { problem: `the cgroup ${path} is the top of the ${hierarchyName(hierarchy)} hierarchy mounted at ${mountPoint}, not a container's own` };
    dirs.push({ hierarchy, cgroup: path, dir: posix.join(mountPoint, root === "/" ? path : path.slice(root.length)) });
  }
  return dirs;
}
