// The agent's environment and exec. PID stays 1; only what the agent needs crosses over.
import { EXEC_PATH_VAR } from "../../boot/paths";
import { isRuntimeVariable } from "../../config/environment";

const OWN = new Set(["PATH", "HOME", "TERM", "KERNEL_BOOT_TIME", "PWD", "OLDPWD", "SHLVL", "_"]);

/**
 * PATH, HOME=/root, TERM (from the kernel's environment, else linux), KERNEL_BOOT_TIME (ns on
 * CLOCK_BOOTTIME when burrow started), plus the variables the kernel handed init from its
 * command line (unknown key=value words), minus anything of the runtime's.
 */
export function buildAgentEnv(inherited: Record<string, string | undefined>, startNs: bigint): string[] {
  const term = inherited.TERM && /^[\w.+-]+$/.test(inherited.TERM) ? inherited.TERM : "linux";
  const env = [EXEC_PATH_VAR, "HOME=/root", `TERM=${term}`, `KERNEL_BOOT_TIME=${startNs}`];
  // Code-unit order, as `env` sorts in the C locale: localeCompare would start ICU's collator
  // (measured ~70 ms of cold code under TCG on the path to exec) for names that are ASCII anyway.
  for (const [key, value] of Object.entries(inherited).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (value === undefined || OWN.has(key) || isRuntimeVariable(key) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    env.push(`${key}=${value}`);
  }
  return env;
}

export function agentArgv(agent: string, initArgs: string[]): string[] {
  return [agent, ...initArgs];
}
