/**
 * `--net tap` with a virtio-net header (as uhyve 0.9 opens the TAP): the
 * device reports the interface's MTU, offers checksum offload where the TAP
 * takes TUN_F_CSUM, and a TCP connection from the host to the `net_echo`
 * guest works both ways — with offload (the guest sends partial checksums
 * that the host kernel completes, and receives frames with partial checksums
 * it may trust) and without (the guest computes every checksum; the host
 * checks them). A wrong header or a lost NEEDS_CSUM flag makes the host drop
 * the segments, so the echo itself is the check. Needs root (netns), the TUN
 * driver, ip and python3; where missing, a loud SKIP line.
 * @module
 */

import assert from "node:assert/strict";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmAvailable } from "../_helpers/kvm.ts";
import { echoClient, hex, run, WatchedProcess } from "../_helpers/net_process.ts";

const MAIN = decodeURIComponent(new URL("../../main.ts", import.meta.url).pathname);
const PERMS = ["--allow-ffi", "--allow-read", "--allow-write=/dev/net/tun"];
const TAP = "otap0";
const MTU = 1400;
const EXIT = new TextEncoder().encode("dhyve-net-exit");

async function unavailable(): Promise<string | null> {
  if (!kvmAvailable()) return "/dev/kvm cannot be opened";
  if ((await run(["test", "-c", "/dev/net/tun"])).code !== 0) return "/dev/net/tun does not exist";
  for (const tool of [["ip", "-V"], ["python3", "--version"]]) {
    try {
      if ((await run(tool)).code !== 0) return `${tool[0]} does not run`;
    } catch {
      return `${tool[0]} is not installed`;
    }
  }
  const probe = await run(["ip", "netns", "add", `dhyve-offload-probe-${Deno.pid}`]);
  if (probe.code !== 0) return `cannot create a network namespace: ${probe.stderr.trim()}`;
  await run(["ip", "netns", "del", `dhyve-offload-probe-${Deno.pid}`]);
  return null;
}

const skip = await unavailable();
if (skip !== null) {
  // deno-lint-ignore no-console
  console.log(`SKIP tests/kvm/net_offload_test.ts: ${skip} (needs root and KVM)`);
}

/** Boots net_echo on a TAP with MTU 1400 (guest option `csum` or not) and echoes TCP through it. */
async function tcpSession(csum: boolean): Promise<string> {
  const ns = `dhyve-offload-${Deno.pid}-${csum ? 1 : 0}`;
  const inNs = (cmd: string[]): string[] => ["ip", "netns", "exec", ns, ...cmd];
  const guest = await buildGuest("net_echo", { iface: 2, pie: true, versionNote: false });
  try {
    for (
      const step of [
        ["ip", "netns", "add", ns],
        inNs(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]),
        inNs(["ip", "link", "set", TAP, "mtu", String(MTU)]),
        inNs(["ip", "addr", "add", "10.0.5.2/24", "dev", TAP]),
        inNs(["ip", "link", "set", TAP, "up"]),
      ]
    ) {
      const r = await run(step);
      assert.equal(r.code, 0, `${step.join(" ")}: ${r.stderr}`);
    }
    const args = ["--timeout", "90s", "-n", `tap:${TAP}`, guest, ...(csum ? ["--", "csum"] : [])];
    const dhyve = new WatchedProcess(
      inNs([Deno.execPath(), "run", "--quiet", ...PERMS, MAIN, ...args]),
      { timeoutMs: 100_000 },
    );
    try {
      await dhyve.waitFor(new RegExp(`net: up .* mtu=${MTU} csum=${csum ? 1 : 0}`), 60_000);
      const payloads = [5, 1000, MTU - 40, 12_000].map((n, i) =>
        Uint8Array.from({ length: n }, (_, j) => (j * 17 + i) & 0xff)
      );
      const echo = { host: "10.0.5.3", port: 7, ns };
      assert.deepEqual(await echoClient({ ...echo, mode: "tcp", data: payloads }), [
        ...payloads.map(hex),
        "eof",
      ]);
      const bye = await echoClient({ ...echo, mode: "udp", data: [EXIT] });
      assert.deepEqual(bye, [hex(new TextEncoder().encode("bye"))]);
      assert.equal(await dhyve.exit(), 0, dhyve.output);
      return dhyve.stdout;
    } finally {
      dhyve.kill();
      await dhyve.exit();
    }
  } finally {
    await run(["ip", "netns", "del", ns]);
  }
}

Deno.test({
  name:
    "--net tap: MTU from the interface; TCP echo with checksum offload (partial checksums both ways)",
  ignore: skip !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(): Promise<void> {
    const out = await tcpSession(true);
    const partial = Number(/partial=(\d+)/.exec(out)?.[1]);
    assert.ok(partial > 0, `the host handed the guest partial checksums\n${out}`);
    assert.match(out, /net: tcp closed bytes=14365/);
  },
});

Deno.test({
  name: "--net tap: TCP echo without offload; the guest's own checksums pass the host's checks",
  ignore: skip !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(): Promise<void> {
    const out = await tcpSession(false);
    assert.match(out, /partial=0\b/, "no partial checksums for a driver without GUEST_CSUM");
    assert.match(out, /net: tcp closed bytes=14365/);
  },
});
