// Spellings the image builder and the boot must agree on. No imports: the host side (src/image)
// reads this file without pulling in anything of PID 1.

/** Where the microVM plan mounts the real root before switching to it; every image has it. */
export const ROOT_MOUNT_POINT = "/sysroot";

/** The PATH every program burrow execs starts with: the agent and the fallback shell. */
export const EXEC_PATH_VAR = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The resident supervisor (image/supervisor/) in every image. */
export const SUPERVISOR_PATH = "/lib/burrow/supervisor";
