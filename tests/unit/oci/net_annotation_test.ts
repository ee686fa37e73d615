/**
 * The `net` and `publish` annotations: read (`readAnnotations`), and turned
 * by `rewriteSpec()` into `--net passt`/`--publish`, the host's passt mounted
 * read-only, `PATH` for it, and `--allow-run=passt` among Deno's permissions.
 * Runs with no permissions: the host is described, not probed.
 * @module
 */

import assert from "node:assert/strict";
import {
  EXEC_OPTIONS_ANNOTATION,
  publishValue,
  readAnnotations,
} from "../../../src/oci/annotations.ts";
import { OciError } from "../../../src/oci/errors.ts";
import { type HostRuntime, type OciSpec, rewriteSpec } from "../../../src/oci/rewrite.ts";

const P = "org.hermit-os.dhyve.";

const HOST: HostRuntime = {
  deno: "/opt/dhyve/node_modules/deno/deno",
  dhyveRoot: "/opt/dhyve",
  denoDir: null,
  libraries: [{ source: "/lib/x86_64-linux-gnu", destination: "/lib/x86_64-linux-gnu" }],
  kvm: { major: 10, minor: 232 },
  passt: "/usr/bin/passt",
};

function spec(annotations: Record<string, string>): OciSpec {
  return {
    process: { args: ["/net_echo"], env: [], cwd: "/" },
    root: { path: "/rootfs" },
    mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    annotations,
  };
}

function rejects(annotations: Record<string, string>, message: RegExp): void {
  assert.throws(
    () => readAnnotations(annotations),
    (e: unknown) => e instanceof OciError && e.exitCode === 64 && message.test(e.message),
  );
}

Deno.test("publishValue(): a bare port is PORT:PORT, and no address means all of the container's", () => {
  assert.equal(publishValue("7"), "0.0.0.0:7:7");
  assert.equal(publishValue("53/udp"), "0.0.0.0:53:53/udp");
  assert.equal(publishValue("8080:80"), "0.0.0.0:8080:80");
  assert.equal(publishValue("8080:80/tcp"), "0.0.0.0:8080:80/tcp");
  assert.equal(publishValue("127.0.0.1:8080:80/udp"), "127.0.0.1:8080:80/udp");
  for (const bad of ["0", "70000", "80/sctp", "a:80", "1:2:3:4", "", "999.1.1.1:80:80"]) {
    assert.throws(() => publishValue(bad), /Invalid port forward/, bad);
  }
});

Deno.test("readAnnotations(): net=passt with a publish list (spaces, commas or semicolons)", () => {
  assert.deepEqual(
    readAnnotations({ [`${P}net`]: "passt", [`${P}publish`]: " 7 7/udp,8080:80;9/udp " }),
    {
      flags: [],
      fileIsolation: "normal",
      net: "passt",
      publish: ["0.0.0.0:7:7", "0.0.0.0:7:7/udp", "0.0.0.0:8080:80", "0.0.0.0:9:9/udp"],
    },
  );
  assert.equal(readAnnotations({ [`${P}net`]: "none" }).net, "none");
  assert.equal(readAnnotations({ [`${P}net`]: "PASST" }).net, "passt");
});

Deno.test("readAnnotations(): a bad network or forward, or publish without net=passt, is refused", () => {
  rejects({ [`${P}net`]: "tap" }, /Bad annotation org\.hermit-os\.dhyve\.net="tap".*passt \| none/);
  rejects(
    { [`${P}net`]: "passt", [`${P}publish`]: "7 70000" },
    /Bad annotation org\.hermit-os\.dhyve\.publish=.*Invalid port forward "70000"/,
  );
  rejects({ [`${P}publish`]: "7" }, /publish needs org\.hermit-os\.dhyve\.net=passt/);
  rejects({ [`${P}net`]: "none", [`${P}publish`]: "7" }, /publish needs .*net=passt/);
});

Deno.test("rewriteSpec() with net=passt: dhyve gets --net passt and the forwards, Deno may run passt", () => {
  const out = rewriteSpec(
    spec({ [`${P}net`]: "passt", [`${P}publish`]: "7 7/udp" }),
    "/net_echo",
    HOST,
  );
  const args = out.process!.args!;
  const main = args.indexOf("/opt/dhyve/src/oci/container_main.ts");
  assert.deepEqual(args.slice(main + 1), [
    "--file-isolation",
    "normal",
    "--tempdir",
    "/tmp",
    "--net",
    "passt",
    "--publish",
    "0.0.0.0:7:7",
    "--publish",
    "0.0.0.0:7:7/udp",
    "/net_echo",
    "--",
  ]);
  // What --print-permissions gives: passt may be run, its socket directory made in /tmp.
  assert.deepEqual(args.slice(3, main), [
    "--allow-run=passt",
    "--allow-ffi",
    "--allow-read=/net_echo,/tmp,/opt/dhyve",
    "--allow-write=/tmp",
  ]);
  assert.deepEqual(out.process!.env, ["DENO_NO_UPDATE_CHECK=1", "PATH=/usr/bin"]);
  assert.deepEqual(out.mounts!.at(-1), {
    destination: "/usr/bin/passt",
    type: "bind",
    source: "/usr/bin/passt",
    options: ["bind", "ro", "nosuid", "nodev"],
  });
  // A second guest (podman exec) gets no network: it could not bind the same ports.
  assert.ok(!out.annotations![EXEC_OPTIONS_ANNOTATION]!.includes("passt"));
});

Deno.test("rewriteSpec() without net=passt neither mounts passt nor lets Deno run it", () => {
  const out = rewriteSpec(spec({}), "/net_echo", HOST);
  assert.ok(!out.process!.args!.some((a) => a.includes("passt")));
  assert.ok(!out.mounts!.some((m) => m.destination === "/usr/bin/passt"));
  assert.deepEqual(out.process!.env, ["DENO_NO_UPDATE_CHECK=1"]);
});

Deno.test("rewriteSpec() with net=passt on a host without passt: one line naming apt, exit 69", () => {
  const { passt: _, ...withoutPasst } = HOST;
  for (const host of [{ ...HOST, passt: null }, withoutPasst]) {
    assert.throws(
      () => rewriteSpec(spec({ [`${P}net`]: "passt" }), "/net_echo", host),
      (e: unknown) =>
        e instanceof OciError && e.exitCode === 69 &&
        /net=passt needs passt on the host.*apt install passt/.test(e.message),
    );
  }
});
