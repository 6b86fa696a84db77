// The module loader thread (a Bun Worker): finit_module calls block, so they run here while the
// main thread goes on booting. It only loads and reports; the main thread logs.
// In the compiled binary this file is an extra `bun build --compile` entrypoint.
import { loadAll, type LoaderMessage, type LoaderRequest } from "./module-loader";

declare const self: Worker;

self.onmessage = (event: MessageEvent) => {
  const request = event.data as LoaderRequest;
  loadAll(request, (message: LoaderMessage) => self.postMessage(message));
};
self.postMessage({ type: "ready" });
