// Docker driving the OCI runtime (dist/burrow-oci: each container a microVM) as daemon.json's
// `"runtimes": {"burrow": {"path": …}}` and `docker run --runtime burrow`: output and exit status,
// and nothing left after it. One dockerd of the test's own (its own data-root, exec-root and
// socket; no bridge, no iptables). BURROW_OCI_TEST_RUNTIME=runc runs the same case against runc.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Engine, explain, RUNTIME_NAME, startDocker, TEST_IMAGE, testRuntime } from "../helpers/oci-engines";

const TIMEOUT_MS = 180_000;
const runtime = testRuntime();
let docker: Engine;

beforeAll(async () => {
  docker = await startDocker(runtime);
}, TIMEOUT_MS);

afterAll(async () => {
  await docker?.stop();
});

test("docker run --runtime burrow --rm --network none: output, exit status, nothing left", async () => {
  const cidFile = join(docker.dir, "cid");
  const result = await docker.cli(["run", "--runtime", RUNTIME_NAME, "--rm", "--cidfile", cidFile, "--network", "none", TEST_IMAGE, "sh", "-c", "echo hi; exit 3"]);
  expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 3, stdout: "hi\n" });
  const id = readFileSync(cidFile, "utf8").trim();
  expect(id).toMatch(/^[0-9a-f]{64}$/);
  const listed = await docker.cli(["ps", "-aq"]);
  expect(listed.stdout, explain(listed)).toBe("");
  expect(await docker.settledLeftovers([id])).toEqual([]);
}, TIMEOUT_MS);
