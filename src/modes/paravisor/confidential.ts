// underhill_confidentiality's rules: OPENHCL_CONFIDENTIAL / OPENHCL_CONFIDENTIAL_DEBUG (or their
// legacy UNDERHILL_* names) are true when set, non-empty and not exactly "0" — so "false" is true.

export type Env = Record<string, string | undefined>;

export function envTruthy(value: string | undefined): boolean {
  return value !== undefined && value !== "" && value !== "0";
}

export interface Confidentiality {
  /** is_confidential_vm(): the host gave us an isolated (CVM) partition. */
  confidential: boolean;
  /** confidential_debug_enabled(). */
  debug: boolean;
  /** confidential_filtering_enabled(): confidential and not debug. */
  filtering: boolean;
}

export function readConfidentiality(env: Env = process.env): Confidentiality {
  const either = (name: string) => envTruthy(env[`OPENHCL_${name}`]) || envTruthy(env[`UNDERHILL_${name}`]);
  const confidential = either("CONFIDENTIAL");
  const debug = either("CONFIDENTIAL_DEBUG");
  return { confidential, debug, filtering: confidential && !debug };
}
