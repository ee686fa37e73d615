/**
 * `--net passt[:SOCKET]`, `--publish` and what they ask of Deno's
 * permissions, without I/O: the parsers, the command line dhyve gives passt,
 * the CLI's usage errors, and the permission scopes (`--allow-run=passt`, the
 * socket directory or an attached socket).
 * @module
 */

import assert from "node:assert/strict";
import { parseCommandLine } from "../../../src/cli.ts";
import type { CliEnvironment, CliRequest } from "../../../src/cli.ts";
import {
  parseNetOption,
  parsePublish,
  PASST_NETWORK,
  type PortForward,
} from "../../../src/net/net_option.ts";
import { passtArguments, passtPortSpec } from "../../../src/net/passt.ts";
import {
  denoCommandLine,
  optionPermissionInput,
  requiredPermissions,
} from "../../../src/permissions.ts";
import { UsageError, type VmParams } from "../../../src/params.ts";

const EMPTY: CliEnvironment = {
  env: () => undefined,
  envAll: () => [],
  readTextFile: () => {
    throw new Error("no files here");
  },
  exists: () => false,
  cwd: () => "/work",
};

function params(argv: string[]): VmParams {
  const r: CliRequest = parseCommandLine(argv, EMPTY);
  assert.equal(r.kind, "run");
  return (r as Extract<CliRequest, { kind: "run" }>).params;
}

Deno.test("parseNetOption() reads passt, user and passt:SOCKET", () => {
  assert.deepEqual(parseNetOption("passt"), { mode: "passt" });
  assert.deepEqual(parseNetOption("user"), { mode: "passt" });
  assert.deepEqual(parseNetOption("passt:/run/user/1000/passt.socket"), {
    mode: "passt",
    socket: "/run/user/1000/passt.socket",
  });
  for (const bad of ["passt:", `passt:/${"x".repeat(107)}`, "slirp", "user:x"]) {
    const r = parseNetOption(bad);
    assert.ok("error" in r, `"${bad}" is refused`);
    assert.match(r.error, /--net/);
    assert.ok(!r.error.includes("\n"));
  }
});

Deno.test("parsePublish() takes the Podman spelling, loopback unless an address is given", () => {
  const cases: [string, PortForward][] = [
    ["8080:80", { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 }],
    ["5353:53/udp", { protocol: "udp", hostAddress: "127.0.0.1", hostPort: 5353, guestPort: 53 }],
    ["1:65535/tcp", { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 1, guestPort: 65535 }],
    ["0.0.0.0:8080:80", { protocol: "tcp", hostAddress: "0.0.0.0", hostPort: 8080, guestPort: 80 }],
    ["[::1]:8080:80/udp", { protocol: "udp", hostAddress: "::1", hostPort: 8080, guestPort: 80 }],
  ];
  for (const [text, want] of cases) assert.deepEqual(parsePublish(text), want, text);
  for (
    const bad of [
      "",
      "80",
      "0:80",
      "80:0",
      "65536:80",
      "80:80/sctp",
      "a:80",
      "1.2.3:80:80",
      "256.0.0.1:80:80",
      "1:2:3:4",
      "80:80/",
      "-1:80",
    ]
  ) {
    const r = parsePublish(bad);
    assert.ok("error" in r, `"${bad}" is refused`);
    assert.match(r.error, /--publish/);
  }
});

Deno.test("parseCommandLine(): --publish is repeatable and needs --net passt (dhyve's own)", () => {
  const p = params(["--net", "passt", "--publish", "8080:80", "--publish", "53:53/udp", "k"]);
  assert.deepEqual(p.net, {
    mode: "passt",
    publish: [
      { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 },
      { protocol: "udp", hostAddress: "127.0.0.1", hostPort: 53, guestPort: 53 },
    ],
  });
  for (
    const argv of [
      ["--publish", "80:80", "k"],
      ["--net", "tap", "--publish", "80:80", "k"],
      ["--net", "passt:/tmp/s", "--publish", "80:80", "k"],
    ]
  ) {
    assert.throws(
      () => params(argv),
      (e: unknown) => e instanceof UsageError && /--publish needs --net passt/.test(e.message),
    );
  }
  assert.throws(() => params(["--net", "passt", "--publish", "80", "k"]), UsageError);
});

Deno.test("passtArguments(): the guest network, one client, and exactly the forwards asked for", () => {
  const publish: PortForward[] = [
    { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 },
    { protocol: "tcp", hostAddress: "0.0.0.0", hostPort: 2222, guestPort: 22 },
  ];
  const args = passtArguments("/tmp/d/passt.socket", { publish, mtu: 1500 });
  const value = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
  assert.ok(args.includes("--one-off") && args.includes("--foreground"));
  assert.equal(value("--socket"), "/tmp/d/passt.socket");
  assert.equal(value("--address"), PASST_NETWORK.address);
  assert.equal(value("--gateway"), PASST_NETWORK.gateway);
  assert.equal(value("--mtu"), "1500");
  assert.equal(value("--tcp-ports"), "127.0.0.1/8080:80,0.0.0.0/2222:22");
  assert.equal(value("--udp-ports"), "none", "passt would mirror TCP forwards to UDP otherwise");
  assert.equal(passtPortSpec([], "tcp"), "none");
  assert.ok(!args.includes("--runas"));
  assert.deepEqual(
    passtArguments("/s", { publish: [], mtu: 1500, runAs: "65534:65534" }).slice(-2),
    ["--runas", "65534:65534"],
  );
});

Deno.test("requiredPermissions() for --net passt: run passt, write its socket's parent; none for a TAP", () => {
  const base = {
    kernel: "/k",
    mappings: [],
    tempDir: null,
    output: null,
    envHost: false,
    libcPath: "/lib/x86_64-linux-gnu/libc.so.6",
  };
  const started = requiredPermissions({
    ...base,
    ...optionPermissionInput({ net: { mode: "passt" } }, "/dhyve/src"),
  });
  assert.deepEqual(started.run, ["passt"]);
  assert.ok(started.write.includes("/tmp"));
  assert.ok(!started.read.includes("/dev/net/tun"), "no TUN device for passt");
  const line = denoCommandLine(started, "/dhyve/main.ts", ["--net", "passt", "/k"]);
  assert.match(line, /--allow-run=passt /);
  const own = requiredPermissions({
    ...base,
    ...optionPermissionInput({ net: { mode: "passt" }, tempDir: "/var/tmp/vm" }, null),
  });
  assert.ok(own.write.includes("/var/tmp/vm"), "--tempdir is where the socket goes");
  const attached = requiredPermissions({
    ...base,
    ...optionPermissionInput({ net: { mode: "passt", socket: "/run/p.sock" } }, null),
  });
  assert.deepEqual(attached.run, [], "nothing is started");
  assert.ok(attached.read.includes("/run/p.sock") && attached.write.includes("/run/p.sock"));
  const tap = requiredPermissions({
    ...base,
    ...optionPermissionInput({ net: { mode: "tap", name: "tap10" } }, null),
  });
  assert.deepEqual(tap.run, []);
  assert.ok(tap.write.includes("/dev/net/tun"));
});
