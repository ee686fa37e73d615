/**
 * `rewriteSpec()`: a Podman-style config.json for a Hermit kernel → Deno
 * running dhyve on it, with arguments, environment, limits, bind mounts,
 * /dev/kvm, read-only mounts and the minimal Deno permissions. Runs with no
 * permissions: the host is described, not probed.
 * @module
 */

import assert from "node:assert/strict";
import { OciError } from "../../../src/oci/errors.ts";
import { EXEC_OPTIONS_ANNOTATION } from "../../../src/oci/annotations.ts";
import {
  type HostRuntime,
  initPrefix,
  type OciSpec,
  rewriteExecProcess,
  rewriteSpec,
} from "../../../src/oci/rewrite.ts";

const HOST: HostRuntime = {
  deno: "/opt/dhyve/node_modules/deno/deno",
  dhyveRoot: "/opt/dhyve",
  denoDir: "/opt/dhyve/.build/oci-deno-dir",
  libraries: [
    { source: "/lib/x86_64-linux-gnu", destination: "/lib/x86_64-linux-gnu" },
    { source: "/lib64/ld-linux-x86-64.so.2", destination: "/lib64/ld-linux-x86-64.so.2" },
  ],
  kvm: { major: 10, minor: 232 },
};

/** The options podmanSpec()'s container gives every guest: Landlock, temp dir, its two binds. */
const SHARED_OPTIONS = [
  "--file-isolation",
  "normal",
  "--tempdir",
  "/tmp",
  "--file-mapping",
  "/etc/hosts:/etc/hosts",
  "--file-mapping",
  "/data:/data:ro",
];

/** What Podman 4.3 writes for `podman run -v /srv/data:/data:ro -e A=1 img /app x -y`, trimmed. */
function podmanSpec(): OciSpec {
  return {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ["/app", "x", "-y"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1"],
      cwd: "/",
      capabilities: { bounding: ["CAP_CHOWN"] },
    },
    root: { path: "/var/lib/containers/storage/overlay/abc/merged" },
    hostname: "abc",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid"] },
      { destination: "/dev/shm", type: "bind", source: "/run/shm", options: ["bind"] },
      {
        destination: "/etc/hosts",
        type: "bind",
        source: "/run/c/hosts",
        options: ["bind", "rprivate"],
      },
      { destination: "/data", type: "bind", source: "/srv/data", options: ["rbind", "ro"] },
    ],
    annotations: { "io.podman.annotations.autoremove": "TRUE" },
    linux: {
      resources: {
        devices: [{ allow: false, access: "rwm" }],
        memory: { limit: 256 * 1024 * 1024 },
        cpu: { quota: 200_000, period: 100_000 },
      },
      namespaces: [{ type: "pid" }],
    },
  };
}

Deno.test("rewriteSpec() makes the process Deno running dhyve on the kernel, with minimal permissions", () => {
  const spec = podmanSpec();
  const before = structuredClone(spec);
  const out = rewriteSpec(spec, "/app", HOST);
  assert.deepEqual(spec, before, "the input is not changed");
  const args = out.process!.args!;
  assert.deepEqual(args.slice(0, 3), [HOST.deno, "run", "--no-prompt"]);
  const main = args.indexOf("/opt/dhyve/src/oci/container_main.ts");
  assert.ok(main > 3);
  // 256 MiB less 112 MiB for 2 vCPUs (quota 200000/100000).
  assert.deepEqual(args.slice(main + 1), [
    "-m",
    "144MiB",
    "-c",
    "2",
    ...SHARED_OPTIONS,
    "-e",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "-e",
    "A=1",
    "/app",
    "--",
    "x",
    "-y",
  ]);
  // What --print-permissions gives for that command line: no prompt, nothing more.
  assert.deepEqual(args.slice(3, main), [
    "--allow-ffi",
    "--allow-read=/app,/etc/hosts,/data,/tmp,/opt/dhyve",
    "--allow-write=/etc/hosts,/tmp",
  ]);
  assert.deepEqual(out.process!.env, [
    "DENO_DIR=/opt/dhyve/.build/oci-deno-dir",
    "DENO_NO_UPDATE_CHECK=1",
  ]);
  assert.deepEqual(out.process!.capabilities, spec.process!.capabilities, "runc's fields stay");
  assert.equal(out.hostname, "abc");
});

Deno.test("rewriteSpec() adds /dev/kvm with its cgroup rule after the engine's rules", () => {
  const out = rewriteSpec(podmanSpec(), "/app", HOST);
  assert.deepEqual(out.linux!.devices, [
    { path: "/dev/kvm", type: "c", major: 10, minor: 232, fileMode: 0o666, uid: 0, gid: 0 },
  ]);
  assert.deepEqual(out.linux!.resources!.devices, [
    { allow: false, access: "rwm" },
    { allow: true, type: "c", major: 10, minor: 232, access: "rwm" },
  ]);
  assert.deepEqual(out.linux!.namespaces, [{ type: "pid" }]);
});

Deno.test("rewriteSpec() mounts dhyve and the host's libraries read-only, and a /tmp", () => {
  const out = rewriteSpec(podmanSpec(), "/app", HOST);
  const added = out.mounts!.slice(podmanSpec().mounts!.length + 1);
  const ro = ["bind", "ro", "nosuid", "nodev"];
  assert.deepEqual(added, [
    { destination: "/opt/dhyve", type: "bind", source: "/opt/dhyve", options: ro },
    {
      destination: "/lib/x86_64-linux-gnu",
      type: "bind",
      source: "/lib/x86_64-linux-gnu",
      options: ro,
    },
    {
      destination: "/lib64/ld-linux-x86-64.so.2",
      type: "bind",
      source: "/lib64/ld-linux-x86-64.so.2",
      options: ro,
    },
  ]);
  assert.deepEqual(out.mounts![podmanSpec().mounts!.length], {
    destination: "/tmp",
    type: "tmpfs",
    source: "tmpfs",
    options: ["nosuid", "nodev", "noexec", "mode=1777"],
  });
});

Deno.test("rewriteSpec() puts its /tmp before mounts beneath it, and keeps an engine's /tmp", () => {
  const spec = podmanSpec();
  spec.mounts!.splice(2, 0, {
    destination: "/tmp/in",
    type: "bind",
    source: "/s",
    options: ["bind"],
  });
  const out = rewriteSpec(spec, "/app", HOST);
  const dests = out.mounts!.map((m) => m.destination);
  assert.ok(dests.indexOf("/tmp") < dests.indexOf("/tmp/in"));
  const withTmp = podmanSpec();
  withTmp.mounts!.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: [] });
  const kept = rewriteSpec(withTmp, "/app", HOST);
  assert.equal(kept.mounts!.filter((m) => m.destination === "/tmp").length, 1);
  assert.ok(!kept.process!.args!.includes("/tmp:/tmp"), "its own /tmp is no guest mapping");
});

Deno.test("rewriteSpec() without limits: dhyve's defaults, one vCPU", () => {
  const spec = podmanSpec();
  delete spec.linux!.resources!.memory;
  delete spec.linux!.resources!.cpu;
  const args = rewriteSpec(spec, "/app", HOST).process!.args!;
  assert.ok(!args.includes("-m") && !args.includes("-c"));
  assert.ok(!args.some((a) => a.startsWith("--allow-read=") && a.includes("/opt/dhyve")));
});

Deno.test("rewriteSpec() takes annotations: memory within the limit, Landlock mode, flags", () => {
  const spec = podmanSpec();
  spec.annotations = {
    "org.hermit-os.dhyve.memory": "64MiB",
    "org.hermit-os.dhyve.file-isolation": "strict",
    "org.hermit-os.dhyve.timeout": "10s",
  };
  const args = rewriteSpec(spec, "/app", HOST).process!.args!;
  const main = args.indexOf("/opt/dhyve/src/oci/container_main.ts");
  assert.deepEqual(args.slice(main + 1, main + 11), [
    "-m",
    "64MiB",
    "-c",
    "2",
    "--file-isolation",
    "strict",
    "--tempdir",
    "/tmp",
    "--timeout",
    "10s",
  ]);
});

Deno.test("rewriteSpec() refuses what dhyve cannot take, in one line each", () => {
  const cases: [string, (spec: OciSpec) => void, RegExp][] = [
    [
      "bad annotation",
      (s) => (s.annotations = { "org.hermit-os.dhyve.cpus": "0" }),
      /Bad annotation/,
    ],
    ["tiny limit", (s) => (s.linux!.resources!.memory = { limit: 32 << 20 }), /too small/],
    [
      "a ':' in a mount",
      (s) => s.mounts!.push({ destination: "/a:b", type: "bind", source: "/x", options: ["bind"] }),
      /holding ":"/,
    ],
    ["env without =", (s) => s.process!.env!.push("JUSTKEY"), /environment entry "JUSTKEY"/],
    [
      "nested mappings",
      (s) =>
        s.mounts!.push({ destination: "/data/sub", type: "bind", source: "/y", options: ["bind"] }),
      /dhyve cannot take these options: /,
    ],
  ];
  for (const [what, edit, pattern] of cases) {
    const spec = podmanSpec();
    edit(spec);
    assert.throws(
      () => rewriteSpec(spec, "/app", HOST),
      (e: unknown) => e instanceof OciError && pattern.test(e.message) && !e.message.includes("\n"),
      what,
    );
  }
});

Deno.test("initPrefix() recognises an engine's init in front of the program", () => {
  assert.deepEqual(initPrefix(["/run/podman-init", "--", "/app", "x"]), ["/run/podman-init", "--"]);
  assert.deepEqual(initPrefix(["/sbin/docker-init", "--", "/app"]), ["/sbin/docker-init", "--"]);
  assert.deepEqual(initPrefix(["/bin/prog", "--", "/app"]), [], "not an init");
  assert.deepEqual(initPrefix(["/run/podman-init", "/app"]), [], "no --");
  assert.deepEqual(initPrefix(["/app"]), []);
});

Deno.test("rewriteSpec() keeps podman's init as pid 1 in front of dhyve", () => {
  const spec = podmanSpec();
  spec.process!.args = ["/run/podman-init", "--", "/app", "x"];
  const args = rewriteSpec(spec, "/app", HOST).process!.args!;
  assert.deepEqual(args.slice(0, 3), ["/run/podman-init", "--", HOST.deno]);
  assert.deepEqual(args.slice(-3), ["/app", "--", "x"]);
});

Deno.test("rewriteSpec() stores the container's shared options for exec, and exec reuses them", () => {
  const out = rewriteSpec(podmanSpec(), "/app", HOST);
  const stored = JSON.parse(out.annotations![EXEC_OPTIONS_ANNOTATION]!);
  assert.deepEqual(stored, SHARED_OPTIONS);
  assert.equal(out.annotations!["io.podman.annotations.autoremove"], "TRUE");
  const exec = rewriteExecProcess(
    { args: ["/tool", "-v"], env: ["B=2"], cwd: "/", terminal: true },
    "/tool",
    { containerOptions: stored, host: HOST },
  );
  const entry = exec.args!.indexOf("/opt/dhyve/src/oci/container_main.ts");
  assert.deepEqual(exec.args!.slice(entry + 1), [...stored, "-e", "B=2", "/tool", "--", "-v"]);
  assert.deepEqual(exec.args!.slice(3, entry), [
    "--allow-ffi",
    "--allow-read=/tool,/etc/hosts,/data,/tmp",
    "--allow-write=/etc/hosts,/tmp",
  ]);
  assert.equal(exec.terminal, true, "runc's fields stay");
  assert.ok(exec.env!.includes("DENO_NO_UPDATE_CHECK=1"));
});
