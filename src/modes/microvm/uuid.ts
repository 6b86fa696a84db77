// UUIDs as filesystems and swap areas hold them: 16 bytes on disk, the dashed hex LABEL=/UUID= match.

/** Random RFC 4122 version 4, as mkswap and mkfs make them. */
export function randomUuidV4(): Uint8Array {
  const uuid = crypto.getRandomValues(new Uint8Array(16));
  uuid[6] = (uuid[6]! & 0x0f) | 0x40;
  uuid[8] = (uuid[8]! & 0x3f) | 0x80;
  return uuid;
}

export function formatUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
