/**
 * `--net` end to end: each test makes its own network namespace with a TAP
 * interface (host side 10.0.5.2/24, only inside the namespace), runs dhyve
 * there with the `net_echo` guest, pings it, exchanges UDP datagrams (a
 * python3 client inside the namespace) and checks the replies byte for byte;
 * hostile drivers must leave the device in NEEDS_RESET and the host running;
 * TAP failures must be one line with a documented exit code. Every
 * subprocess has a deadline and is killed in `finally`; every namespace is
 * deleted in `finally`. Needs root (netns), /dev/net/tun, ip, python3; where
 * they are missing the tests print a loud SKIP line.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { buildGuest, type GuestBuild } from "../_helpers/guests.ts";
import { dhyveArgs } from "../_helpers/cli.ts";
import { kvmAvailable } from "../_helpers/kvm.ts";
import { hex, run, WatchedProcess } from "../_helpers/net_process.ts";
import { MAIN } from "../_helpers/repo.ts";
import { AS_NOBODY, type Stage, stageDhyve } from "../_helpers/stage.ts";

const GUEST_IP = "10.0.5.3";
const HOST_CIDR = "10.0.5.2/24";
const TAP = "dtap0";
/** Permissions of a networked run: KVM, reading the guest and dhyve's Worker modules, the TAP. */
const PERMS = ["--allow-ffi", "--allow-read", "--allow-write=/dev/net/tun", "--allow-env"];
/** Version-note-free builds: uhyve checks Hermit ≥ 0.13.2 only when a kernel has the note. */
const V2_PIE: GuestBuild = { iface: 2, pie: true, versionNote: false };
const V1_FIXED: GuestBuild = { iface: 1, pie: false, versionNote: false };

/** Why networking tests cannot run here, or null. */
async function netUnavailable(): Promise<string | null> {
  if (!kvmAvailable()) return "/dev/kvm cannot be opened";
  // Deno stats device files only under --allow-all: ask test(1).
  if ((await run(["test", "-c", "/dev/net/tun"])).code !== 0) return "/dev/net/tun does not exist";
  for (const tool of [["ip", "-V"], ["python3", "--version"], ["ping", "-V"]]) {
    try {
      if ((await run(tool)).code !== 0) return `${tool[0]} does not run`;
    } catch {
      return `${tool[0]} is not installed`;
    }
  }
  const probe = `dhyve-probe-${Deno.pid}`;
  const made = await run(["ip", "netns", "add", probe]);
  if (made.code !== 0) return `cannot create a network namespace: ${made.stderr.trim()}`;
  await run(["ip", "netns", "del", probe]);
  return null;
}

const unavailable = await netUnavailable();
if (unavailable !== null) {
  // deno-lint-ignore no-console
  console.log(`SKIP tests/kvm/net_test.ts: ${unavailable} (the --net tests need root and KVM)`);
}

/**
 * Runs `main.ts ARGS` in namespace `ns` to its end, with the test's permissions;
 * `wrapper` (e.g. a setpriv command) goes in front of deno.
 */
function dhyveIn(
  ns: string,
  args: string[],
  wrapper: string[] = [],
  stage?: Stage,
): ReturnType<typeof run> {
  const deno = stage?.deno ?? Deno.execPath();
  const main = stage?.main ?? MAIN;
  return run([
    "ip",
    "netns",
    "exec",
    ns,
    ...wrapper,
    deno,
    ...dhyveArgs(args, { perms: PERMS, main }),
  ]);
}

let nsCounter = 0;

/** A fresh namespace with a TAP that is up and has the host address; deleted afterwards. */
async function withNamespace<T>(fn: (ns: string) => Promise<T>, tapMode = "tap"): Promise<T> {
  const ns = `dhyve-test-${Deno.pid}-${nsCounter++}`;
  const steps = [
    ["ip", "netns", "add", ns],
    ["ip", "netns", "exec", ns, "ip", "tuntap", "add", "dev", TAP, "mode", tapMode],
    ["ip", "netns", "exec", ns, "ip", "addr", "add", HOST_CIDR, "dev", TAP],
    ["ip", "netns", "exec", ns, "ip", "link", "set", TAP, "up"],
    ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
  ];
  try {
    for (const step of steps) {
      const r = await run(step);
      assert.equal(r.code, 0, `${step.join(" ")}: ${r.stderr}`);
    }
    return await fn(ns);
  } finally {
    await run(["ip", "netns", "del", ns]);
  }
}

/** dhyve in namespace `ns`, with the test's permissions; its output is read as it comes. */
function dhyveProcess(ns: string, args: string[], timeoutMs: number): WatchedProcess {
  return new WatchedProcess(
    ["ip", "netns", "exec", ns, Deno.execPath(), ...dhyveArgs(args, { perms: PERMS })],
    { timeoutMs },
  );
}

/** A UDP client inside the namespace: sends each payload, prints "<sent hex> <reply hex>". */
const UDP_CLIENT = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for hexdata in sys.argv[2:]:
    data = bytes.fromhex(hexdata)
    s.sendto(data, (sys.argv[1], 7))
    reply, _ = s.recvfrom(65535)
    print(hexdata, reply.hex(), flush=True)
`;

/** Payloads of several sizes up to the largest that fits one 1500-byte IPv4 packet. */
function payloads(): Uint8Array[] {
  return [1, 64, 512, 1000, 1472].map((n, i) =>
    Uint8Array.from({ length: n }, (_, j) => (j * 31 + i * 7 + 1) & 0xff)
  );
}

/** Boots net_echo in `ns`, pings it, checks UDP echo byte for byte, ends it; returns its stdout. */
async function echoSession(
  ns: string,
  guest: string,
  extra: string[] = [],
  afterPing?: () => Promise<void>,
): Promise<string> {
  const dhyve = dhyveProcess(
    ns,
    [...extra, "--timeout", "90s", "-n", `tap:${TAP}`, guest],
    100_000,
  );
  try {
    await dhyve.waitFor(/net: up mac=[0-9a-f:]+ irq=11 link=1/, 60_000);
    const ping = await run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-W", "5", GUEST_IP]);
    assert.equal(ping.code, 0, `ping failed:\n${ping.stdout}${ping.stderr}\n${dhyve.stdout}`);
    assert.match(ping.stdout, /3 packets transmitted, 3 received/);
    await afterPing?.();

    const sent = payloads();
    const udp = await run([
      "ip",
      "netns",
      "exec",
      ns,
      "python3",
      "-c",
      UDP_CLIENT,
      GUEST_IP,
      ...sent.map(hex),
    ]);
    assert.equal(udp.code, 0, `UDP client failed:\n${udp.stderr}`);
    const lines = udp.stdout.trim().split("\n");
    assert.equal(lines.length, sent.length);
    for (const [i, line] of lines.entries()) {
      const [out, back] = line.split(" ");
      assert.equal(back, out, `datagram ${i} (${sent[i]!.length} bytes) came back changed`);
    }

    const bye = await run([
      "ip",
      "netns",
      "exec",
      ns,
      "python3",
      "-c",
      UDP_CLIENT,
      GUEST_IP,
      hex(new TextEncoder().encode("dhyve-net-exit")),
    ]);
    assert.equal(bye.stdout.trim().split(" ")[1], hex(new TextEncoder().encode("bye")));
    const code = await dhyve.exit();
    assert.equal(code, 0, `dhyve exit ${code}\n${dhyve.stdout}\n${dhyve.stderr}`);
    return dhyve.stdout;
  } finally {
    dhyve.kill();
    await dhyve.exit();
  }
}

function netTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: unavailable !== null, sanitizeResources: false, fn });
}

netTest(
  "--net: ping and UDP echo through a TAP, 1 vCPU (v2 PIE), interrupts delivered",
  async () => {
    const guest = await buildGuest("net_echo", V2_PIE);
    await withNamespace(async (ns) => {
      const out = await echoSession(ns, guest);
      const done = out.match(/net: done rx=(\d+) tx=(\d+) irqs=(\d+)/);
      assert.ok(done, out);
      // 3 pings + 5 datagrams + the exit datagram at least (plus ARP).
      assert.ok(Number(done[1]) >= 9, out);
      assert.ok(Number(done[2]) >= 9, out);
      assert.ok(Number(done[3]) > 0, `the guest saw no interrupt from the device\n${out}`);
    });
  },
);

netTest(
  "--net: the same with 2 vCPUs (vCPU Workers, v1 fixed) and a --mac of our own",
  async () => {
    const guest = await buildGuest("net_echo", V1_FIXED);
    await withNamespace(async (ns) => {
      const mac = ["-c", "2", "--mac", "02:d8:00:0a:0b:0c"];
      const out = await echoSession(ns, guest, mac, async () => {
        // The host learnt the guest's MAC from its ARP reply (while the link is up).
        const neighbours = await run(["ip", "netns", "exec", ns, "ip", "neigh", "show", GUEST_IP]);
        assert.match(neighbours.stdout, /lladdr 02:d8:00:0a:0b:0c/, `ARP: ${neighbours.stdout}`);
      });
      assert.match(out, /net: up mac=02:d8:00:0a:0b:0c /, "the guest reads the MAC it was given");
      assert.match(out, /net: done rx=\d+ tx=\d+ irqs=[1-9]/);
    });
  },
);

netTest("--net: a second dhyve on a TAP in use gets one line and exit 71 (busy)", async () => {
  const guest = await buildGuest("net_echo", V2_PIE);
  await withNamespace(async (ns) => {
    const first = dhyveProcess(ns, ["--timeout", "60s", "-n", `tap:${TAP}`, guest], 70_000);
    try {
      await first.waitFor(/net: up/, 60_000);
      const second = await dhyveIn(ns, ["-n", `tap:${TAP}`, guest]);
      assert.equal(second.code, EXIT_CODE.HOST_ERROR, second.stderr);
      assert.match(second.stderr, /^dhyve: error: TAP device "dtap0" is busy.*\n$/);
      assert.equal(second.stdout, "");
    } finally {
      first.kill();
      await first.exit();
    }
  });
});

netTest(
  "--net: a TAP that does not exist is made for the run, with a warning naming the fix",
  async () => {
    const guest = await buildGuest("net_echo", V2_PIE);
    await withNamespace(async (ns) => {
      const dhyve = dhyveProcess(
        ns,
        ["--timeout", "60s", "-n", "tap:madetap", guest, "--", "bad-status"],
        70_000,
      );
      try {
        const code = await dhyve.exit();
        assert.equal(code, 0, `${dhyve.stdout}\n${dhyve.stderr}`);
        assert.match(
          dhyve.stderr,
          /^dhyve: warning: TAP device "madetap" did not exist: .*ip tuntap add dev madetap mode tap.*\n$/,
        );
        assert.match(dhyve.stdout, /net: hostile bad-status/);
      } finally {
        dhyve.kill();
        await dhyve.exit();
      }
      const gone = await run(["ip", "netns", "exec", ns, "ip", "link", "show", "madetap"]);
      assert.notEqual(gone.code, 0, "the temporary TAP is gone after the run");
    });
  },
);

const HOSTILE_MODES = [
  "bad-status",
  "early-notify",
  "ring-outside",
  "loop",
  "outside",
  "huge",
  "zero",
  "next-index",
  "head-index",
  "avail-jump",
];

netTest(
  "--net: hostile drivers put the device into NEEDS_RESET; reset recovers; host runs on",
  async () => {
    const guest = await buildGuest("net_echo", V2_PIE);
    await withNamespace(async (ns) => {
      for (const mode of HOSTILE_MODES) {
        const dhyve = dhyveProcess(
          ns,
          ["--timeout", "60s", "-n", `tap:${TAP}`, guest, "--", mode],
          70_000,
        );
        try {
          const code = await dhyve.exit();
          const context = `mode ${mode}: exit ${code}\n${dhyve.stdout}\n${dhyve.stderr}`;
          assert.equal(code, 0, context);
          const line = dhyve.stdout.match(
            /net: hostile (\S+) status=0x([0-9a-f]+) isr=0x([0-9a-f]+) after-reset=0x([0-9a-f]+)/,
          );
          assert.ok(line, context);
          assert.equal(line[1], mode);
          assert.equal(parseInt(line[2]!, 16) & 0x40, 0x40, `NEEDS_RESET\n${context}`);
          assert.equal(parseInt(line[3]!, 16) & 2, 2, `ISR config-change bit\n${context}`);
          assert.equal(line[4], "0", context);
          assert.equal(dhyve.stderr, "", context);
        } finally {
          dhyve.kill();
          await dhyve.exit();
        }
      }
    });
  },
);

netTest(
  "--net: a TUN device, no access to /dev/net/tun, no CAP_NET_ADMIN: one line each",
  async () => {
    const guest = await buildGuest("net_echo", V2_PIE);
    await withNamespace(async (ns) => {
      const asTun = await dhyveIn(ns, ["-n", `tap:${TAP}`, guest]);
      assert.equal(asTun.code, EXIT_CODE.HOST_ERROR, asTun.stderr);
      assert.match(asTun.stderr, /^dhyve: error: .*dtap0.*\n$/);

      // A copy nobody can read: the checkout may be private (a clone into a 0700 directory).
      const stage = await stageDhyve([guest]);
      const nobody = await dhyveIn(ns, ["-n", "tap:nosuchtap", stage.files.get(guest)!], [
        ...AS_NOBODY,
        "env",
        ...Object.entries(stage.env).map(([name, value]) => `${name}=${value}`),
      ], stage).finally(() => stage.dispose());
      assert.equal(nobody.code, EXIT_CODE.PERMISSION, nobody.stderr);
      // Which step refuses depends on /dev/net/tun's mode here (0666 on most distributions).
      const mode = (await run(["stat", "-c", "%a", "/dev/net/tun"])).stdout.trim();
      assert.match(
        nobody.stderr,
        mode.endsWith("6")
          ? /^dhyve: error: Not allowed to use TAP device "nosuchtap".*ip tuntap add dev nosuchtap mode tap.*\n$/
          : /^dhyve: error: Cannot open \/dev\/net\/tun: permission denied.*\n$/,
      );

      // Root without CAP_NET_ADMIN opens /dev/net/tun but may not create a TAP.
      const noCap = await dhyveIn(ns, ["-n", "tap:nosuchtap", guest], [
        "setpriv",
        "--bounding-set=-net_admin",
        "--inh-caps=-net_admin",
      ]);
      assert.equal(noCap.code, EXIT_CODE.PERMISSION, noCap.stderr);
      assert.match(
        noCap.stderr,
        /^dhyve: error: Not allowed to use TAP device "nosuchtap".*"ip tuntap add dev nosuchtap mode tap user \$\(id -un\)".*\n$/,
      );
    }, "tun");
  },
);

Deno.test({
  name: "--net: bad values, an old Hermit, and missing Deno permissions exit before the guest",
  ignore: !kvmAvailable(),
  fn: async () => {
    const guest = await buildGuest("net_echo", V2_PIE);
    const dhyve = (args: string[], perms = PERMS) =>
      run([Deno.execPath(), ...dhyveArgs(args, { perms })]);
    for (const value of ["udp", "tap:", "tap:waytoolonginterface", "tun:x", "tap:a/b"]) {
      const r = await dhyve(["-n", value, guest]);
      assert.equal(r.code, EXIT_CODE.USAGE, `--net ${value}: ${r.stderr}`);
      assert.match(r.stderr, /^dhyve: error: Invalid .*--net.*\n$/);
    }
    // The default build carries a Hermit 0.12.0 version note: too old for --net, as in uhyve.
    const old = await buildGuest("net_echo", { iface: 2, pie: true });
    const r = await dhyve(["-n", "tap:x", old]);
    assert.equal(r.code, EXIT_CODE.BAD_KERNEL, r.stderr);
    assert.match(r.stderr, /Hermit 0\.13\.2 or newer; this one is 0\.12\.0/);
    const noWrite = await dhyve(["-n", "tap:x", guest], [
      "--allow-ffi",
      "--allow-read",
      "--allow-env",
    ]);
    assert.equal(noWrite.code, EXIT_CODE.PERMISSION, noWrite.stderr);
    assert.match(noWrite.stderr, /allow-write=\/dev\/net\/tun/);
    const line = await dhyve(["--print-permissions", "-n", "tap:x", guest]);
    assert.equal(line.code, 0, line.stderr);
    assert.match(line.stdout, /--allow-write=[^ ]*\/dev\/net\/tun/);
    assert.match(line.stdout, /--allow-read=[^ ]*\/dev\/net\/tun/);
  },
});
