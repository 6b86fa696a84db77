// The id each run puts on the kernel command line (burrow.runid=): only exit-status lines carrying
// it count, so it must be one the guest cannot guess.
import { getRandomValues } from "node:crypto";

const RUN_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A fresh run id: 24 letters/digits from the system CSPRNG (~143 bits), matching RUN_ID_PATTERN. */
export function newRunId(length = 24): string {
  let id = "";
  while (id.length < length) {
    for (const byte of getRandomValues(new Uint8Array(length))) {
      // 248 = 4 × 62: dropping the rest keeps every character equally likely.
      if (byte < 248 && id.length < length) id += RUN_ID_ALPHABET[byte % 62];
    }
  }
  return id;
}
