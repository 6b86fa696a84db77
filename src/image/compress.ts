// Compression both ways: the cpio payload's (the kernel's initramfs unpacker reads gzip and zstd),
// and a compressed module read back (.ko.gz/.zst/.xz), for what only its ELF header says.
import { spawnSync } from "bun";
import { describeError } from "../errors";
import type { ModuleCompression } from "../modules/names";
import { ImageError } from "./error";

export type Compression = "none" | "gzip" | "zstd";

export function compress(chunks: Uint8Array[], how: Compression): Uint8Array {
  const raw = Buffer.concat(chunks);
  if (how === "none") return raw;
  if (how === "gzip") return Bun.gzipSync(raw, { level: 6 });
  return Bun.zstdCompressSync(raw, { level: 9 });
}

/** The bytes the kernel gets after it decompresses `data`; Bun reads gzip and zstd, xz takes xz-utils. */
export function decompress(data: Uint8Array, how: ModuleCompression, what: string): Uint8Array {
  try {
    // A copy: Bun's decoders take no view that may sit on a SharedArrayBuffer.
    if (how === "gz") return Bun.gunzipSync(new Uint8Array(data));
    if (how === "zst") return Bun.zstdDecompressSync(new Uint8Array(data));
  } catch (error) {
    throw new ImageError(`${what}: cannot decompress (${how}): ${describeError(error)}`);
  }
  let result;
  try {
    result = spawnSync(["xz", "--decompress", "--stdout"], { stdin: data, stdout: "pipe", stderr: "pipe" });
  } catch (error) {
    throw new ImageError(`${what}: cannot run xz: ${describeError(error)} (install xz-utils: \`just deps\`)`);
  }
  if (result.exitCode !== 0) throw new ImageError(`${what}: cannot decompress (xz): ${result.stderr.toString().trim() || `exit ${result.exitCode}`}`);
  return new Uint8Array(result.stdout);
}
