// burrow's TypeScript API (`import { boot, restore, Pool } from "burrow"`): microVMs booted or
// restored from a snapshot, driven over their supervisor's control channel. README.md, "The
// TypeScript API".
export { boot, type BootOptions } from "./api/boot";
export { restore, type RestoreVmOptions } from "./api/restore";
export { Pool, type PoolClone, type PoolOptions, type RestoreFunction } from "./api/pool";
export { DEFAULT_MAX_OUTPUT_BYTES, Vm, type VmExecOptions } from "./api/vm";
export { BootError, ChannelClosedError, GuestError, OutputLimitError, PoolClosedError, PoolRestoreError, SpawnError, VmEndedError } from "./api/errors";
export type { ExecResult, GuestInfo, GuestProcess, SpawnOptions } from "./control/client";
export type { RunResult } from "./host/qemu";
