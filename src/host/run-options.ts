// What runVm is asked to run and what it gives back: the types every part of the launcher shares,
// in a file of their own so the parts (argv, process, checks) need not import the launcher.
import type { ControlMux } from "../control/mux";
import type { Arch } from "../arch";
import type { PortForward } from "./options";
import type { Verdict } from "./verdict";

export interface PortSpec { name: string; file: string | null }

export interface SerialDisk { serial: string; file: string }

/** A host directory exported to the guest over virtio-9p, which mounts it by its tag (burrow.root=9p:TAG, a container's volumes). */
export interface Share { tag: string; path: string; readOnly: boolean }

/**
 * A tap device that already exists where QEMU runs (its network namespace, RunOptions.netns),
 * opened by name; the guest's virtio-net NIC gets `mac`. Who made the tap removes it.
 */
export interface TapNic { ifname: string; mac: string }

/** microvm and q35 are x86_64 machines, virt the arm64 one (checkMachine pairs them). */
export type Machine = "microvm" | "q35" | "virt";
export type Accel = "tcg" | "kvm";

export interface SpawnedVm {
  pid: number;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<number>;
  control: Promise<ControlMux> | null;
}

export interface RunOptions {
  /** The guest architecture (default this host's): which QEMU, and its console. */
  arch?: Arch;
  kernel: string;
  initrd: string | null;
  disks: string[];
  /** Of `disks`, the ones the guest may only read (readonly=on: the device itself refuses writes). */
  readOnlyDisks?: readonly string[];
  /** Disks the guest finds by virtio serial (root=SERIAL=NAME), attached after `disks`. */
  serialDisks?: SerialDisk[];
  /** Host directories the guest mounts over virtio-9p by tag, attached after the disks (QEMU's own 9p server: no helper process). */
  shares?: Share[];
  /**
   * QEMU's seccomp filter (-sandbox on with obsolete, elevateprivileges, spawn and resourcecontrol
   * denied): a guest that takes over QEMU through a device bug cannot exec, fork, setuid or renice.
   * Not with a snapshot save, which migrates through exec:cat.
   */
  sandbox?: boolean;
  ports: PortSpec[];
  mem: string;
  smp: number;
  machine: Machine;
  accel: Accel;
  /**
   * TCG's translation buffer in MiB (QEMU's tb-size; 7.2's default is 1 GiB of mapping, of which
   * a guest's boot dirties tens of MiB). Host tuning only, not device state: a restore may pick its own.
   */
  tcgTbSizeMiB?: number;
  append: string;
  timeoutSeconds: number;
  qemu?: string;
  /**
   * One virtio-net NIC, the guest given burrow.net=1: on QEMU's user network (DHCP and DNS from
   * QEMU, outbound through the host) with host ports forwarded into the guest, or on a tap device
   * (`tap`: the OCI runtime's mirror of an engine's veth). Absent: no NIC.
   */
  net?: { forwards: PortForward[] } | { tap: TapNic };
  /**
   * Run QEMU inside this network namespace (a path: /run/netns/NAME, /proc/PID/ns/net), entered
   * with nsenter --net after setpriv set the death signal: a container engine's namespace, whose
   * tap the NIC uses. Only the network namespace: paths, sockets and disks are the caller's.
   */
  netns?: string;
  /** Extra raw QEMU arguments (tests use them for odd devices). */
  extraArgs?: string[];
  /** This run's id (burrow.runid=); runVm draws a random one when absent. */
  runId?: string;
  /**
   * Put the serial console on a unix socket (QEMU the server) instead of stdio, for driving a
   * guest shell. QEMU waits for the first client before it starts the guest, so nothing printed
   * is lost; the console then goes to that client, not to the run's output, and the verdict rests
   * on QEMU's exit status.
   */
  consoleSocket?: string;
  /**
   * The caller handles SIGINT, SIGTERM and SIGHUP itself (the OCI holder forwards them to the
   * workload): runVm does not turn them into a stop of the guest.
   */
  ownSignals?: boolean;
  /** Aborting kills QEMU (a caller that gave up on the guest). */
  signal?: AbortSignal;
  /** Open every disk with snapshot=on: guest writes go to a throw-away overlay, never to the file. */
  snapshotDisks?: boolean;
  /**
   * A unix socket (QEMU the server) behind the virtio-serial port burrow.control, the guest
   * supervisor's control channel. runVm makes one itself for a supervised guest (the default);
   * either way runVm owns its one connection (a ControlMux, handed to onSpawn).
   */
  controlSocket?: string;
  /** The caller connects to controlSocket itself (a test sending what a real host never would): runVm does not. */
  rawControl?: boolean;
  /** A unix socket for QMP (QEMU the server). */
  qmpSocket?: string;
  /**
   * Start from a saved state in this file instead of booting. QEMU reads it from an fd we open
   * (-incoming fd:3): no shell and cat in between, and no pipe to copy through (measured ~40 ms
   * less to a loaded 64 MiB guest than exec:cat).
   */
  incomingFile?: string;
  /**
   * Take the saved state only when the driver says so over QMP (migrate-incoming fd:3), after it
   * set what both sides of the migration must agree on (x-ignore-shared for a mapped RAM file).
   */
  incomingDeferred?: boolean;
  /**
   * The guest's RAM in this file instead of anonymous memory: shared (MAP_SHARED: the guest's
   * writes reach the file, as a save needs) or private (MAP_PRIVATE: pages come from the file as
   * the guest touches them, its writes stay in this QEMU, the file is never written).
   */
  ramFile?: { path: string; shared: boolean };
  /**
   * Called once QEMU runs, for callers that drive it (QMP, the control channel) while the console
   * streams. `control` settles once the guest's supervisor answered on the control port (null: the
   * guest has none); it rejects when QEMU ends first.
   */
  onSpawn?: (qemu: SpawnedVm) => void;
}

/** The part of RunOptions that can be written to a file and read back (no callbacks, no signal). */
export type StoredRun = Omit<RunOptions, "onSpawn" | "signal">;

/** How a run ended (its verdict) and what it printed. */
export interface RunResult extends Verdict {
  output: string;
  wallMs: number;
  /** The id this run put on the kernel command line. */
  runId: string;
}
