// The kernel's random device ioctls (include/uapi/linux/random.h).

/** RNDADDENTROPY = _IOW('R', 0x03, int[2]): mix bytes in and credit them. */
export const RNDADDENTROPY = 0x40085203;
/** RNDRESEEDCRNG = _IO('R', 0x07): reseed the CRNG from the pool now (the supervisor does, after every restore). */
export const RNDRESEEDCRNG = 0x5207;

/** struct rand_pool_info { int entropy_count (bits); int buf_size; __u32 buf[]; }, buf sized `bufferSize`. */
export function rndAddEntropyArgument(bytes: Uint8Array, bufferSize = bytes.length): Uint8Array {
  const argument = new Uint8Array(8 + Math.max(bufferSize, bytes.length));
  const view = new DataView(argument.buffer);
  view.setInt32(0, bytes.length * 8, true);
  view.setInt32(4, bytes.length, true);
  argument.set(bytes, 8);
  return argument;
}
