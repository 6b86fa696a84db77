// The memory step's self-test (the description's `selfTest`): a marker written at one GPA through
// the mapping that covers it and read back, which proves the mapping reaches the page (the boot
// tests then find the marker in guest RAM from the host) and that it is readable and writable.
//
// Both copies are made by the kernel, through a socket connected to itself, never by touching the
// mapping from JS: a bad page then fails read()/write() with EFAULT, which becomes one clear error,
// where a direct access would raise SIGBUS and kill PID 1.
import { describeError } from "../errors";
import { log } from "../log";
import * as sys from "../sys";
import { vaOf, type GuestMapping, type MappingKind } from "./mapping";
import { isHardwareIsolated, type Partition } from "./partition";
import { hex } from "./ranges";

export const MARKER_BYTES = 64;

export function selfTestMarker(isolation: string, gpa: number): Buffer {
  return Buffer.from(`burrow-memory-selftest isolation=${isolation} gpa=${hex(gpa)} `.padEnd(MARKER_BYTES, "."), "ascii");
}

export interface SelfTestResult {
  gpa: string;
  mapping: MappingKind;
  va: string;
  marker: string;
  /**
   * Chunks registered with the kernel (MSHV_VTL_ADD_VTL0_MEMORY) once the marker's VA was exposed to
   * it, as guestmem's expose_va does before a VA escapes to the kernel; null without a registrar
   * (TDX, shared: underhill_mem never registers them).
   */
  registrations: number | null;
}


/** Write the marker at the self-test GPA through its mapping and read it back. */
export function runSelfTest(partition: Partition, mappings: readonly GuestMapping[]): SelfTestResult {
  const { gpa, mapping: which } = partition.selfTest!;
  const kind: MappingKind = which === "shared" ? "shared" : which === "vtl1" ? "vtl1" : isHardwareIsolated(partition) ? "vtl0-private" : "vtl0";
  const mapping = mappings.find((m) => m.kind === kind);
  if (!mapping) throw new Error(`self-test: no ${kind} mapping`);
  const marker = selfTestMarker(partition.isolation, gpa);
  const va = vaOf(mapping, gpa);
  // The VA goes to the kernel (read/write below): register its chunk first, as mapping.rs's expose_va.
  mapping.registrar?.expose(gpa, MARKER_BYTES);
  const back = Buffer.alloc(MARKER_BYTES);
  const loopback = openLoopback();
  try {
    try {
      sys.write(loopback, marker);
      if (sys.readToAddress(loopback, va, MARKER_BYTES) !== MARKER_BYTES) throw new Error("short copy");
    } catch (error) {
      throw new Error(`self-test: writing the marker at GPA ${hex(gpa)} through the ${kind} mapping failed: ${describeError(error)}`);
    }
    try {
      sys.writeFromAddress(loopback, va, MARKER_BYTES);
      sys.read(loopback, back);
    } catch (error) {
      throw new Error(`self-test: reading the marker back at GPA ${hex(gpa)} through the ${kind} mapping failed: ${describeError(error)}`);
    }
  } finally {
    sys.close(loopback);
  }
  if (!back.equals(marker)) throw new Error(`self-test: read back ${JSON.stringify(back.toString("latin1"))} at GPA ${hex(gpa)}, wrote ${JSON.stringify(marker.toString())}`);
  log.info(`memory: self-test marker written at GPA ${hex(gpa)} through the ${kind} mapping (va ${hex(va)}) and read back`);
  return { gpa: hex(gpa), mapping: kind, va: hex(va), marker: marker.toString("ascii"), registrations: mapping.registrar?.registrations.length ?? null };
}

/**
 * An AF_UNIX datagram socket bound and connected to its own abstract address (abstract: nothing on
 * any filesystem), so each write() comes back whole on the next read(). The address goes away
 * with the socket.
 */
function openLoopback(): number {
  const name = Buffer.from(`burrow-memory-self-test-${process.pid}`, "ascii");
  // struct sockaddr_un: sa_family, then a NUL (abstract namespace) and the name, unterminated.
  const address = new Uint8Array(2 + 1 + name.byteLength);
  new DataView(address.buffer).setUint16(0, sys.AddressFamily.UNIX, true);
  address.set(name, 3);
  const fd = sys.socket(sys.AddressFamily.UNIX, sys.SocketType.DGRAM | sys.SocketType.CLOEXEC, 0);
  try {
    sys.bind(fd, address);
    sys.connect(fd, address, { what: "self-test loopback" });
    return fd;
  } catch (error) {
    sys.close(fd);
    throw error;
  }
}
