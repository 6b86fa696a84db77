// Which containers are a pod's sandbox (src/oci/sandbox.ts): no VM for them.
import { describe, expect, test } from "bun:test";
import { isSandboxPlan, podSandbox } from "../../src/oci/sandbox";

describe("podSandbox", () => {
  test("the CRI's annotations (containerd, CRI-O) and Podman's infra command", () => {
    expect(podSandbox({ "io.kubernetes.cri.container-type": "sandbox" }, ["/pause"])).toBe("io.kubernetes.cri.container-type=sandbox");
    expect(podSandbox({ "io.kubernetes.cri-o.ContainerType": "sandbox" }, ["/pause"])).toBe("io.kubernetes.cri-o.ContainerType=sandbox");
    expect(podSandbox({}, ["/catatonit", "-P"])).toBe("Podman's infra command (catatonit -P)");
  });

  test("a pod's other containers, and any other container, are not", () => {
    expect(podSandbox({ "io.kubernetes.cri.container-type": "container" }, ["/pause"])).toBeNull();
    expect(podSandbox({ "io.kubernetes.cri-o.ContainerType": "container" }, ["sh"])).toBeNull();
    // catatonit as an init (podman run --init) runs the container's command: a VM's.
    expect(podSandbox({}, ["/run/podman-init", "--", "sh"])).toBeNull();
    expect(podSandbox({}, ["/catatonit", "--", "sleep", "1"])).toBeNull();
    expect(podSandbox({}, [])).toBeNull();
  });

  test("a sandbox's plan is told from a VM's", () => {
    expect(isSandboxPlan({ sandbox: { netns: null, why: "x" }, cgroups: [] })).toBe(true);
    expect(isSandboxPlan({ run: {}, process: {} })).toBe(false);
    expect(isSandboxPlan(null)).toBe(false);
  });
});
