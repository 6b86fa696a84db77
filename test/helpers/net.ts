// Reaching a guest's forwarded TCP port from the host (QEMU's user network listens on 127.0.0.1).
import { connect, createServer } from "node:net";

/** A port nobody on this host listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One connection's whole reply; "" when the guest closed at once (slirp accepts before the guest listens). */
export function fetchReply(port: number): Promise<string> {
  return new Promise((resolve) => {
    let reply = "";
    const socket = connect(port, "127.0.0.1");
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => (reply += chunk));
    socket.on("close", () => resolve(reply));
    socket.on("error", () => resolve(reply));
    socket.setTimeout(10_000, () => socket.destroy());
  });
}
