// A lane thread of the memory step (a Bun Worker): runs the share of jobs it is sent on its own
// fds (lanes.ts) and posts the result. In the compiled binary this file is an extra
// `bun build --compile` entrypoint.
import { runLane, type LaneRequest } from "./lanes";

declare const self: Worker;

self.onmessage = (event: MessageEvent) => {
  self.postMessage(runLane(event.data as LaneRequest));
};
self.postMessage({ type: "ready" });
