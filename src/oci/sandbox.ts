// A pod's sandbox container: Kubernetes' pause container (containerd's CRI annotates it
// io.kubernetes.cri.container-type=sandbox, CRI-O io.kubernetes.cri-o.ContainerType=sandbox) or
// Podman's infra container (no annotation: Podman runs `catatonit -P` from its own pause image).
// It runs nothing: it holds the pod's namespaces, which the pod's other containers join by
// /proc/<its pid>/ns/… (the pid in its --pid-file). As a VM it would hold them where nothing can
// join them, and take the pod's veth from the container that serves the pod's address; so a
// sandbox gets no VM. Its holder joins the network namespace and waits, as pause does, for the
// signal that ends it.
import { rmSync } from "node:fs";
import { basename } from "node:path";
import { constants } from "node:os";
import { describeError } from "../errors";
import * as sys from "../sys";
import { joinCgroup } from "./cgroups";
import { type ContainerPaths, updateRecord } from "./container-dir";
import { type HolderRequest, serveHolderRequests } from "./holder-link";
import { answerParent } from "./spawn-self";

const SANDBOX_ANNOTATIONS = [
  ["io.kubernetes.cri.container-type", "sandbox"],
  ["io.kubernetes.cri-o.ContainerType", "sandbox"],
] as const;

/** Signals pause (and catatonit -P) ends on, with status 0; any other is ignored, as pause does. */
const ENDING_SIGNAL_NAMES: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"];
const ENDING_SIGNALS: ReadonlySet<number> = new Set(ENDING_SIGNAL_NAMES.map((name) => constants.signals[name]));

/** What create hands a sandbox's holder (its plan.json). */
export interface SandboxPlan {
  sandbox: {
    /** config.json's network namespace, which the holder joins (null: it stays in the host's). */
    netns: string | null;
    /** Why this container is a pod's sandbox, for the holder's log. */
    why: string;
  };
  /** The container's cgroup in every host hierarchy (cgroups.ts), which the holder joins; empty: none. */
  cgroups: string[];
}

/** Why the container is a pod's sandbox (said under --debug), or null for any other container. */
export function podSandbox(annotations: Readonly<Record<string, string>>, args: readonly string[]): string | null {
  for (const [key, value] of SANDBOX_ANNOTATIONS) if (annotations[key] === value) return `${key}=${value}`;
  if (basename(args[0] ?? "") === "catatonit" && args.includes("-P")) return "Podman's infra command (catatonit -P)";
  return null;
}

export function isSandboxPlan(plan: unknown): plan is SandboxPlan {
  return typeof plan === "object" && plan !== null && "sandbox" in plan;
}

/** `burrow-oci holder ID` for a sandbox: in the pod's network namespace until a signal ends it; its status is the container's. */
export async function runSandboxHolder(paths: ContainerPaths, plan: SandboxPlan, say: (line: string) => void): Promise<number> {
  const { netns, why } = plan.sandbox;
  say(`a pod's sandbox (${why}): no VM; the holder holds the pod's namespaces`);
  try {
    // The engine's limits and stats cover the sandbox as they cover runc's pause process.
    joinCgroup(plan.cgroups, process.pid);
    // On the main thread: /proc/<pid>/ns/net, what the pod's containers join, is the pod's.
    if (netns !== null) sys.setns(netns, sys.CLONE_NEWNET);
  } catch (error) {
    const reason = describeError(error);
    say(`create failed: ${reason}`);
    updateRecord(paths, { status: "stopped", error: reason });
    answerParent(`error: ${reason}`);
    return 1;
  }
  let end!: (status: number) => void;
  const ended = new Promise<number>((resolve) => (end = resolve));
  let started = false;
  const handle = async (request: HolderRequest): Promise<void> => {
    if (request.op === "start") {
      if (started) throw new Error("the container was already started");
      started = true;
      updateRecord(paths, { status: "running" });
    } else if (request.op === "kill") {
      if (request.signal === constants.signals.SIGKILL) setTimeout(() => end(128 + request.signal), 0);
      else if (ENDING_SIGNALS.has(request.signal)) setTimeout(() => end(0), 0);
    } else {
      // Nothing runs to freeze: the state says what the engine asked.
      updateRecord(paths, { status: request.op === "pause" ? "paused" : started ? "running" : "created" });
    }
  };
  const server = serveHolderRequests(paths.holderSocket, handle, describeError);
  const onEnding = () => end(0);
  for (const name of ENDING_SIGNAL_NAMES) process.on(name, onEnding);
  updateRecord(paths, { status: "created" });
  answerParent("ready");
  const status = await ended;
  for (const name of ENDING_SIGNAL_NAMES) process.off(name, onEnding);
  server.stop(true);
  rmSync(paths.holderSocket, { force: true });
  updateRecord(paths, { status: "stopped", exitStatus: status });
  say(`the sandbox ended; the container's status is ${status}`);
  return status;
}
