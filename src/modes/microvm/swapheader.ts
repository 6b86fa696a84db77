// The swap area header mkswap would write, encoded by us (the guest has no mkswap).
// Layout: the kernel's union swap_header (include/linux/swap.h) for 4 KiB pages:
//   bootbits[1024] | version u32 @1024 | last_page u32 @1028 | nr_badpages u32 @1032 |
//   sws_uuid[16] @1036 | sws_volume[16] @1052 | padding … | magic "SWAPSPACE2" @ PAGE_SIZE-10.
// Integers are in the CPU's byte order (little-endian on x86_64 and aarch64).
import { randomUuidV4 } from "./uuid";

export const SWAP_PAGE_SIZE = 4096;
const SWAP_MAGIC = "SWAPSPACE2";
const OFFSET = { version: 1024, lastPage: 1028, badPages: 1032, uuid: 1036, label: 1052 } as const;
const LABEL_BYTES = 16;

export interface SwapHeaderOptions {
  /** Size of the swap area in bytes (rounded down to whole pages). */
  bytes: number;
  /** 16 bytes; a random RFC 4122 v4 UUID when absent. */
  uuid?: Uint8Array;
  /** Up to 15 bytes (the field is 16 bytes, NUL-terminated). */
  label?: string;
}

/** One page: the whole header. Throws on sizes no kernel would accept (fewer than 10 pages, > 2^32 pages). */
export function encodeSwapHeader(options: SwapHeaderOptions): Uint8Array {
  const pages = Math.floor(options.bytes / SWAP_PAGE_SIZE);
  if (pages < 10) throw new RangeError(`swap area of ${options.bytes} bytes is too small (at least 10 pages of ${SWAP_PAGE_SIZE} bytes)`);
  if (pages - 1 > 0xffffffff) throw new RangeError(`swap area of ${options.bytes} bytes is too large`);
  const uuid = options.uuid ?? randomUuidV4();
  if (uuid.byteLength !== 16) throw new RangeError("uuid must be 16 bytes");
  const label = Buffer.from(options.label ?? "", "utf8");
  if (label.byteLength > LABEL_BYTES - 1) throw new RangeError(`label ${JSON.stringify(options.label)} is longer than ${LABEL_BYTES - 1} bytes`);

  const page = new Uint8Array(SWAP_PAGE_SIZE);
  const view = new DataView(page.buffer);
  view.setUint32(OFFSET.version, 1, true);
  view.setUint32(OFFSET.lastPage, pages - 1, true);
  view.setUint32(OFFSET.badPages, 0, true);
  page.set(uuid, OFFSET.uuid);
  page.set(label, OFFSET.label);
  page.set(Buffer.from(SWAP_MAGIC, "latin1"), SWAP_PAGE_SIZE - SWAP_MAGIC.length);
  return page;
}
