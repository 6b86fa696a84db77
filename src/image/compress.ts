// The cpio payload's compression; the kernel's initramfs unpacker reads gzip and zstd.
export type Compression = "none" | "gzip" | "zstd";

export function compress(chunks: Uint8Array[], how: Compression): Uint8Array {
  const raw = Buffer.concat(chunks);
  if (how === "none") return raw;
  if (how === "gzip") return Bun.gzipSync(raw, { level: 6 });
  return Bun.zstdCompressSync(raw, { level: 9 });
}
