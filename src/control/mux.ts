// One connection to the guest's control port (QEMU serves one client at a time) shared by many
// clients: in-process ones and those of other processes (`burrow exec`) on a unix socket. Frames
// are relayed by rewriting only the header's session id; bodies are not decoded, except the credit
// counts that keep every queue bounded.
import { encodeError, encodeFrame, type Frame, frameTypeName, readU32 } from "./frames";
import { greet, putWindow } from "./client";
import { type FrameTransport, listenUnix, transportPair, type UnixListener, unixTransport, type UnixTransportOptions } from "./transport";
import { ErrorCode, FrameType, INPUT_WINDOW_BYTES, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, PROTOCOL_VERSION } from "./wire";

export interface MuxOptions {
  /** How long the guest may take to answer HELLO (default 10 s). */
  helloTimeoutMs?: number;
  /** One line per client dropped for breaking the wire. */
  log?: (line: string) => void;
}

/** Requests a session starts with, and whether one answer ends them. */
const OPENERS = new Map<number, "answer" | "stream">([
  [FrameType.PING, "answer"],
  [FrameType.INFO, "answer"],
  [FrameType.STOP, "answer"],
  [FrameType.SIGNAL_WORKLOAD, "answer"],
  [FrameType.EXEC, "stream"],
  [FrameType.PUT, "stream"],
  [FrameType.GET, "stream"],
]);
/** What a client may send within a session it opened. */
const IN_SESSION = new Set<number>([FrameType.STDIN, FrameType.RESIZE, FrameType.SIGNAL, FrameType.CREDIT, FrameType.PUT_DATA, FrameType.CLOSE]);
/** What ends a stream session on the guest's side. */
const SESSION_ENDS = new Set<number>([FrameType.EXITED, FrameType.FAILED, FrameType.FILE_DONE, FrameType.ERROR]);
const OUTPUT_TYPES = new Set<number>([FrameType.STDOUT, FrameType.STDERR, FrameType.FILE_DATA]);

interface Route {
  muxSession: number;
  client: ClientLink;
  /** The client's id for it; 0 for its session-0 requests (answered on 0). */
  clientSession: number;
  kind: "answer" | "stream";
  /** Output the guest may still send: grants beyond the window would let a client's queue grow. */
  outputCredit: number;
  /** Input the guest has not acknowledged, and how much it may be (an upload's window is its own). */
  inputOutstanding: number;
  inputWindow: number;
}

interface ClientLink {
  transport: FrameTransport;
  greeted: boolean;
  /** Its routes by its own (non-zero) session ids. */
  sessions: Map<number, Route>;
  routes: Set<Route>;
}

export class ControlMux {
  private readonly clients = new Set<ClientLink>();
  private readonly routes = new Map<number, Route>();
  private readonly listeners: UnixListener[] = [];
  private lastSession = 0;
  private helloAckBody: Uint8Array = new Uint8Array(0);
  /** The guest's PUT_DATA window (HELLO_ACK), as its clients see it too. */
  private putWindow = INPUT_WINDOW_BYTES;
  /** Sent once by the guest; a client that greets later hears it too. */
  private workloadExited: Frame | null = null;
  /** A snapshot waiting for its save or resume (READY until RESUMED): a client that greets later hears it too. */
  private snapshotReady: Frame | null = null;
  private closedReason: string | null = null;

  private constructor(private readonly guest: FrameTransport, private readonly log: (line: string) => void) {}

  /** Connects to QEMU's control chardev and greets the guest. */
  static async connect(path: string, options: MuxOptions & UnixTransportOptions = {}): Promise<ControlMux> {
    return ControlMux.over(await unixTransport(path, options), options);
  }

  static async over(guest: FrameTransport, options: MuxOptions = {}): Promise<ControlMux> {
    const mux = new ControlMux(guest, options.log ?? (() => {}));
    const greeting = await greet(guest, (frame) => mux.fromGuest(frame), options.helloTimeoutMs);
    mux.helloAckBody = greeting.body;
    mux.putWindow = putWindow(greeting.ack);
    guest.onClose((reason) => mux.close(`the guest's channel closed: ${reason}`));
    return mux;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** A client in this process (ControlClient.over(mux.local())). */
  local(): FrameTransport {
    const [mine, theirs] = transportPair();
    this.accept(mine);
    return theirs;
  }

  /** Serves clients on a unix socket (ControlClient.connect(path)) until close(). */
  listen(path: string): void {
    if (this.closedReason !== null) throw new Error(`the control mux is closed: ${this.closedReason}`);
    this.listeners.push(listenUnix(path, (transport) => this.accept(transport)));
  }

  close(reason = "the control mux was closed"): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const listener of this.listeners.splice(0)) listener.stop();
    for (const client of [...this.clients]) client.transport.close(reason);
    this.guest.close(reason);
  }

  private accept(transport: FrameTransport): void {
    if (this.closedReason !== null) return transport.close(this.closedReason);
    const client: ClientLink = { transport, greeted: false, sessions: new Map(), routes: new Set() };
    this.clients.add(client);
    transport.onFrame((frame) => this.fromClient(client, frame));
    transport.onClose(() => this.forget(client));
  }

  /** A client went: the guest gives up what it still runs for it. */
  private forget(client: ClientLink): void {
    this.clients.delete(client);
    this.endRoutes(client);
  }

  private endRoutes(client: ClientLink): void {
    for (const route of client.routes) {
      this.routes.delete(route.muxSession);
      // An answer-only request (PING, STOP…) has nothing to give up; its answer is dropped.
      if (route.kind === "stream") this.guest.send(encodeFrame(FrameType.CLOSE, route.muxSession));
    }
    client.routes.clear();
    client.sessions.clear();
  }

  /** Drops a client that broke the wire: one line to it, the guest and the others untouched. */
  private drop(client: ClientLink, reason: string): void {
    client.transport.send(encodeFrame(FrameType.ERROR, 0, encodeError(ErrorCode.BAD_REQUEST, `the control mux dropped this client: ${reason}`)));
    this.log(`control mux: dropped a client: ${reason}`);
    client.transport.close(reason);
  }

  private answer(client: ClientLink, session: number, code: number, message: string): void {
    client.transport.send(encodeFrame(FrameType.ERROR, session, encodeError(code, message)));
  }

  private fromClient(client: ClientLink, frame: Frame): void {
    const name = frameTypeName(frame.type);
    if (frame.type === FrameType.HELLO) return this.hello(client, frame);
    if (!client.greeted) return this.drop(client, `${name} before HELLO`);
    if (frame.session === 0) {
      if (frame.type === FrameType.RESUME) return this.guest.send(encodeFrame(frame.type, 0, frame.body, frame.flags));
      if (OPENERS.get(frame.type) === "answer") return this.open(client, frame, 0);
      if (OPENERS.has(frame.type) || IN_SESSION.has(frame.type)) return this.answer(client, 0, ErrorCode.BAD_REQUEST, `${name} needs a session of its own, not 0`);
      return this.drop(client, `${name} is not a request a client sends`);
    }
    const route = client.sessions.get(frame.session);
    if (OPENERS.has(frame.type)) {
      if (route) return this.answer(client, frame.session, ErrorCode.SESSION_EXISTS, `session ${frame.session} is already open`);
      return this.open(client, frame, frame.session);
    }
    if (!IN_SESSION.has(frame.type)) return this.drop(client, `${name} is not a request a client sends`);
    if (!route) return this.answer(client, frame.session, ErrorCode.NO_SESSION, `session ${frame.session} is not open`);
    if (frame.type === FrameType.STDIN || frame.type === FrameType.PUT_DATA) {
      route.inputOutstanding += frame.body.byteLength;
      if (route.inputOutstanding > route.inputWindow) return this.drop(client, `more than ${route.inputWindow} bytes of input on session ${frame.session} unacknowledged`);
    } else if (frame.type === FrameType.CREDIT) {
      if (frame.body.byteLength < 4) return this.drop(client, `a CREDIT of ${frame.body.byteLength} bytes`);
      route.outputCredit += readU32(frame.body, "CREDIT");
      if (route.outputCredit > OUTPUT_WINDOW_BYTES) return this.drop(client, `output credit beyond the ${OUTPUT_WINDOW_BYTES}-byte window on session ${frame.session}`);
    } else if (frame.type === FrameType.CLOSE) {
      this.unroute(route);
    }
    this.guest.send(encodeFrame(frame.type, route.muxSession, frame.body, frame.flags));
  }

  private hello(client: ClientLink, frame: Frame): void {
    const version = frame.body.byteLength >= 4 ? readU32(frame.body, "HELLO") : -1;
    if (frame.session !== 0 || version !== PROTOCOL_VERSION) {
      this.answer(client, 0, ErrorCode.VERSION, `this guest speaks control protocol ${PROTOCOL_VERSION}`);
      return client.transport.close(`HELLO with protocol ${version}`);
    }
    // HELLO starts a connection over: the guest's side of it ends what the client had open.
    this.endRoutes(client);
    client.greeted = true;
    client.transport.send(encodeFrame(FrameType.HELLO_ACK, 0, this.helloAckBody));
    if (this.workloadExited) client.transport.send(encodeFrame(FrameType.WORKLOAD_EXITED, 0, this.workloadExited.body));
    if (this.snapshotReady) client.transport.send(encodeFrame(FrameType.READY, 0, this.snapshotReady.body));
  }

  private open(client: ClientLink, frame: Frame, clientSession: number): void {
    if (client.routes.size >= MAX_SESSIONS) return this.answer(client, clientSession, ErrorCode.TOO_MANY_SESSIONS, `${MAX_SESSIONS} requests of this client are open`);
    const route: Route = {
      muxSession: this.allocate(),
      client,
      clientSession,
      kind: OPENERS.get(frame.type)!,
      outputCredit: OUTPUT_WINDOW_BYTES,
      inputOutstanding: 0,
      inputWindow: frame.type === FrameType.PUT ? this.putWindow : INPUT_WINDOW_BYTES,
    };
    this.routes.set(route.muxSession, route);
    client.routes.add(route);
    if (clientSession !== 0) client.sessions.set(clientSession, route);
    this.guest.send(encodeFrame(frame.type, route.muxSession, frame.body, frame.flags));
  }

  private unroute(route: Route): void {
    this.routes.delete(route.muxSession);
    route.client.routes.delete(route);
    if (route.client.sessions.get(route.clientSession) === route) route.client.sessions.delete(route.clientSession);
  }

  private allocate(): number {
    do this.lastSession = this.lastSession >= 0xffffffff ? 1 : this.lastSession + 1;
    while (this.routes.has(this.lastSession));
    return this.lastSession;
  }

  private fromGuest(frame: Frame): void {
    if (frame.session === 0) {
      // Late answers to the mux's re-sent HELLOs.
      if (frame.type === FrameType.HELLO_ACK) return;
      if (frame.type === FrameType.WORKLOAD_EXITED) this.workloadExited = frame;
      if (frame.type === FrameType.READY) this.snapshotReady = frame;
      if (frame.type === FrameType.RESUMED) this.snapshotReady = null;
      const bytes = encodeFrame(frame.type, 0, frame.body, frame.flags);
      for (const client of this.clients) if (client.greeted) client.transport.send(bytes);
      return;
    }
    const route = this.routes.get(frame.session);
    // A session its client gave up, or one from before the mux's HELLO.
    if (!route) return;
    if (OUTPUT_TYPES.has(frame.type)) route.outputCredit -= frame.body.byteLength;
    else if (frame.type === FrameType.INPUT_CREDIT && frame.body.byteLength >= 4) route.inputOutstanding = Math.max(0, route.inputOutstanding - readU32(frame.body, "INPUT_CREDIT"));
    if (route.kind === "answer" || SESSION_ENDS.has(frame.type)) this.unroute(route);
    route.client.transport.send(encodeFrame(frame.type, route.clientSession, frame.body, frame.flags));
  }
}
