/**
 * `--net passt` end to end, with dhyve running as an unprivileged user
 * (nobody, through setpriv): the `net_echo` guest comes up on the address
 * dhyve gives passt (10.0.5.3), echoes UDP and a TCP connection that the host
 * makes to a forwarded loopback port, pings through passt where the kernel
 * lets nobody open ICMP sockets, and leaves no passt process and no socket
 * file behind after a normal exit, SIGTERM or SIGKILL. `--net passt:SOCKET`
 * attaches to a passt started by the test; a missing passt is one line. With
 * root, the same session also runs in a network namespace of its own (where
 * ICMP is allowed, so the ping part must pass).
 *
 * What the unprivileged user needs is staged in a temp dir (dhyve's sources,
 * its two npm packages, the guest), since the checkout may sit in a 0700
 * directory. `/dev/kvm` is usually root's only: each run gets a private
 * mount namespace whose `/dev/kvm` is a fresh node of the same device that
 * the user may open, so the host's device file is not touched. Needs root
 * (setpriv, unshare, mknod), passt, python3 and KVM; where any is missing the
 * tests print a loud SKIP line.
 * @module
 */

import assert from "node:assert/strict";
import { buildGuest, type GuestBuild } from "../_helpers/guests.ts";
import { kvmAvailable } from "../_helpers/kvm.ts";
import { echoClient, freePort, hex, run, WatchedProcess } from "../_helpers/net_process.ts";
import { AS_NOBODY, NOBODY_ID, stageDhyve } from "../_helpers/stage.ts";

const V2_PIE: GuestBuild = { iface: 2, pie: true, versionNote: false };
const NOBODY = String(NOBODY_ID);

/** Why these tests cannot run here, or null. */
async function unavailable(): Promise<string | null> {
  if (!kvmAvailable()) return "/dev/kvm cannot be opened";
  if ((await run(["id", "-u"])).stdout.trim() !== "0") {
    return "not root (the test drops to nobody with setpriv)";
  }
  for (const tool of [["passt", "--version"], ["python3", "--version"], ["setpriv", "--version"]]) {
    try {
      if ((await run(tool)).code !== 0) return `${tool[0]} does not run`;
    } catch {
      return `${tool[0]} is not installed${tool[0] === "passt" ? " (apt install passt)" : ""}`;
    }
  }
  return null;
}

const skip = await unavailable();
if (skip !== null) {
  // deno-lint-ignore no-console
  console.log(`SKIP tests/kvm/net_passt_test.ts: ${skip}`);
}

/** A staged dhyve (tests/_helpers/stage.ts) plus what these tests add to it. */
interface PasstStage {
  /** The staged main.ts and deno binary. */
  main: string;
  deno: string;
  /** The staged guest. */
  guest: string;
  /** nobody's home: the cwd of its runs. */
  home: string;
  /** Parent of passt's socket directory (--tempdir): must hold none after every run. */
  tmp: string;
  /** The environment of nobody's runs (HOME, DENO_DIR, PATH, and where /dev/kvm's node goes). */
  env: Record<string, string>;
}

let staged: Promise<PasstStage> | undefined;

/** Stages dhyve and the guest for nobody, once; removed when the test file ends. */
function stage(): Promise<PasstStage> {
  staged ??= (async () => {
    const guest = await buildGuest("net_echo", V2_PIE);
    const st = await stageDhyve([guest]);
    const root = st.home.slice(0, st.home.lastIndexOf("/"));
    globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
    const tmp = `${st.home}/tmp`;
    const dev = `${root}/dev`;
    await Deno.mkdir(tmp);
    await Deno.chown(tmp, NOBODY_ID, NOBODY_ID);
    await Deno.mkdir(dev, { mode: 0o755 });
    return {
      main: st.main,
      deno: st.deno,
      guest: st.files.get(guest)!,
      home: st.home,
      tmp,
      env: {
        ...st.env,
        DHYVE_KVM_DIR: dev,
        PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
      },
    };
  })();
  return staged;
}

/**
 * A shell script that gives the (private) mount namespace a /dev/kvm that
 * nobody may open, then runs "$@" as nobody.
 */
const NOBODY_WITH_KVM = `
set -e
dev="$DHYVE_KVM_DIR"
mount -t tmpfs -o mode=0755 dhyve-kvm "$dev"
mknod "$dev/kvm" c $(stat -c '%Hr %Lr' /dev/kvm)
chmod 0666 "$dev/kvm"
mount --bind "$dev/kvm" /dev/kvm
exec ${AS_NOBODY.join(" ")} "$@"
`;

/** The command prefix that runs the rest as nobody, in namespace `ns` if given. */
function asNobody(ns?: string): string[] {
  return [
    ...(ns === undefined ? [] : ["ip", "netns", "exec", ns]),
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    NOBODY_WITH_KVM,
    "sh",
  ];
}

/** The `deno run` flags dhyve's own --print-permissions asks for these options. */
async function printedPermissions(s: PasstStage, dhyveArgs: string[]): Promise<string[]> {
  const r = await run(
    [
      ...asNobody(),
      s.deno,
      "run",
      "--quiet",
      "--allow-read",
      s.main,
      "--print-permissions",
      ...dhyveArgs,
    ],
    { env: s.env, timeoutMs: 60_000, cwd: s.home },
  );
  assert.equal(r.code, 0, `--print-permissions: ${r.stderr}`);
  const flags = r.stdout.trim().split(/\s+/).filter((w) => w.startsWith("--allow-"));
  const starts = dhyveArgs.includes("passt");
  assert.equal(flags.includes("--allow-run=passt"), starts, `--allow-run=passt in ${r.stdout}`);
  return flags;
}

/** The real uid process `pid` runs as (unshare and setpriv exec into deno: same pid). */
async function uidOf(pid: number): Promise<number> {
  // ps, not /proc: Deno wants --allow-all for /proc.
  return Number((await run(["ps", "-o", "ruid=", "-p", String(pid)])).stdout.trim());
}

/** Starts dhyve as nobody with `--net passt`, publishing `port` (TCP and UDP) to guest port 7. */
async function startDhyve(
  s: PasstStage,
  port: number,
  options: { ns?: string; guestArgs?: string[]; net?: string[] } = {},
): Promise<WatchedProcess> {
  const netArgs = options.net ??
    ["--net", "passt", "--publish", `${port}:7`, "--publish", `127.0.0.1:${port}:7/udp`];
  const dhyveArgs = ["-vv", "--tempdir", s.tmp, "--timeout", "120s", ...netArgs, s.guest];
  const flags = await printedPermissions(s, dhyveArgs);
  const cmd = [
    ...asNobody(options.ns),
    s.deno,
    "run",
    "--quiet",
    ...flags,
    s.main,
    ...dhyveArgs,
    ...(options.guestArgs === undefined ? [] : ["--", ...options.guestArgs]),
  ];
  const dhyve = new WatchedProcess(cmd, { env: s.env, timeoutMs: 150_000, cwd: s.home });
  await dhyve.waitFor(/net: up mac=02:00:0a:00:05:03 irq=11 link=1 mtu=1500/, 90_000);
  return dhyve;
}

function payload(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, j) => (j * 31 + seed * 7 + 1) & 0xff);
}

/** The echo client on 127.0.0.1:`port` (in namespace `ns` if given); its output lines. */
function client(
  port: number,
  mode: "udp" | "tcp",
  data: Uint8Array[],
  ns?: string,
): Promise<string[]> {
  return echoClient({ host: "127.0.0.1", port, mode, data, ...(ns === undefined ? {} : { ns }) });
}

/** Whether process `pid` is gone (or a zombie nobody reaps: not a running passt). */
async function gone(pid: number): Promise<boolean> {
  const r = await run(["ps", "-o", "stat=", "-p", String(pid)]);
  return r.code !== 0 || r.stdout.trim().startsWith("Z");
}

/** Waits (up to 10 s) until process `pid` is gone. */
async function waitGone(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await gone(pid))) {
    if (Date.now() > deadline) assert.fail(`passt (pid ${pid}) is still running`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** passt's pid from dhyve's -vv line. */
async function passtPid(dhyve: WatchedProcess): Promise<number> {
  const m = await dhyve.waitFor(/--net: passt \(pid (\d+)\)/, 10_000, { stderr: true });
  return Number(m[1]);
}

/**
 * No passt socket directory (dhyve-passt-*) is left in the stage's temp dir.
 * (The VM's own temp dir, dhyve-*, does outlive a SIGKILL: nothing can remove it then.)
 */
async function assertNoSocketLeft(s: PasstStage): Promise<void> {
  const left: string[] = [];
  for await (const e of Deno.readDir(s.tmp)) {
    if (e.name.startsWith("dhyve-passt-")) left.push(e.name);
  }
  assert.deepEqual(left, [], `passt's socket directory is gone from ${s.tmp}`);
}

/** The host's own IPv4 address (what the guest pings through passt), or null. */
async function hostAddress(ns?: string): Promise<string | null> {
  const r = await run([
    ...(ns === undefined ? [] : ["ip", "netns", "exec", ns]),
    "ip",
    "-4",
    "-o",
    "addr",
    "show",
    "scope",
    "global",
  ]);
  return /inet (\d+\.\d+\.\d+\.\d+)/.exec(r.stdout)?.[1] ?? null;
}

/** Whether nobody may open ICMP echo sockets (net.ipv4.ping_group_range) in `ns`. */
async function pingAllowed(ns?: string): Promise<boolean> {
  const r = await run([
    ...(ns === undefined ? [] : ["ip", "netns", "exec", ns]),
    "cat",
    "/proc/sys/net/ipv4/ping_group_range",
  ]);
  const [lo, hi] = r.stdout.trim().split(/\s+/).map(Number);
  return lo !== undefined && hi !== undefined && lo <= Number(NOBODY) && Number(NOBODY) <= hi;
}

/**
 * The whole session: address, ping (where allowed), UDP and TCP echo through
 * the forwarded port, the exit datagram, and no passt or socket left.
 */
async function echoSession(ns?: string, requirePing = false): Promise<void> {
  const s = await stage();
  const port = freePort();
  const target = await hostAddress(ns);
  const ping = target !== null && (await pingAllowed(ns));
  if (!ping) {
    // deno-lint-ignore no-console
    console.log(
      `SKIP (part) ping through passt${ns === undefined ? "" : ` in ${ns}`}: ` +
        (target === null
          ? "the host has no global IPv4 address to ping"
          : `net.ipv4.ping_group_range does not include gid ${NOBODY}, so passt cannot open ICMP sockets`),
    );
  }
  assert.ok(ping || !requirePing, "ping must be possible in the test's own namespace");
  const dhyve = await startDhyve(s, port, {
    ...(ns ? { ns } : {}),
    guestArgs: ping ? [`ping=${target}`] : [],
  });
  try {
    const pid = await passtPid(dhyve);
    assert.equal(await uidOf(dhyve.pid), NOBODY_ID, "dhyve runs as nobody");
    if (ping) {
      await dhyve.waitFor(
        new RegExp(`net: ping reply from ${target!.replaceAll(".", "\\.")}`),
        30_000,
      );
    }
    const udp = [1, 64, 1000, 1472].map((n, i) => payload(n, i));
    assert.deepEqual(await client(port, "udp", udp, ns), udp.map(hex), "UDP echoed byte for byte");
    const tcp = [5, 1460, 4000, 20_000].map((n, i) => payload(n, i + 10));
    assert.deepEqual(
      await client(port, "tcp", tcp, ns),
      [...tcp.map(hex), "eof"],
      "TCP echoed, then closed",
    );
    await dhyve.waitFor(/net: tcp closed bytes=25465/, 20_000);
    assert.deepEqual(await client(port, "udp", [new TextEncoder().encode("dhyve-net-exit")], ns), [
      hex(new TextEncoder().encode("bye")),
    ]);
    assert.equal(await dhyve.exit(), 0, dhyve.output);
    assert.match(dhyve.stdout, /net: done rx=\d+ tx=\d+/);
    assert.match(dhyve.stderr, /--net: \d+ frames to the guest, \d+ from it, 0 dropped/);
    await waitGone(pid);
    await assertNoSocketLeft(s);
  } finally {
    dhyve.signal("SIGKILL");
    await dhyve.exit();
  }
}

Deno.test({
  name:
    "--net passt as nobody: UDP and TCP echo through forwarded loopback ports, ping where allowed",
  ignore: skip !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => echoSession(),
});

Deno.test({
  name: "--net passt as nobody in a network namespace of its own: ping, UDP and TCP echo",
  ignore: skip !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(): Promise<void> {
    const ns = `dhyve-passt-${Deno.pid}`;
    const steps = [
      ["ip", "netns", "add", ns],
      ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
      // passt wants an interface with a default route to take its host side from.
      ["ip", "netns", "exec", ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
      ["ip", "netns", "exec", ns, "ip", "addr", "add", "198.51.100.2/24", "dev", "d0"],
      ["ip", "netns", "exec", ns, "ip", "link", "set", "d1", "up"],
      ["ip", "netns", "exec", ns, "ip", "link", "set", "d0", "up"],
      ["ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", "198.51.100.1"],
      ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"],
    ];
    try {
      for (const step of steps) {
        const r = await run(step);
        assert.equal(r.code, 0, `${step.join(" ")}: ${r.stderr}`);
      }
      await echoSession(ns, true);
    } finally {
      await run(["ip", "netns", "del", ns]);
    }
  },
});

for (const sig of ["SIGTERM", "SIGINT", "SIGKILL"] as const) {
  Deno.test({
    name: `--net passt: after ${sig} of dhyve no passt process and no socket file are left`,
    ignore: skip !== null,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(): Promise<void> {
      const s = await stage();
      const dhyve = await startDhyve(s, freePort());
      try {
        const pid = await passtPid(dhyve);
        assert.ok(!(await gone(pid)), "passt runs while the guest does");
        await assertNoSocketLeft(s); // removed as soon as dhyve connected
        dhyve.signal(sig);
        const code = await dhyve.exit();
        assert.equal(code, { SIGTERM: 143, SIGINT: 130, SIGKILL: 137 }[sig], dhyve.output);
        await waitGone(pid); // after SIGKILL: passt's --one-off sees the socket close
        await assertNoSocketLeft(s);
      } finally {
        dhyve.signal("SIGKILL");
        await dhyve.exit();
      }
    },
  });
}

Deno.test({
  name: "--net passt:SOCKET attaches to a passt the user started, and TCP echo works through it",
  ignore: skip !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(): Promise<void> {
    const s = await stage();
    const port = freePort();
    const socket = `${s.tmp}/own-passt.socket`;
    const passt = new Deno.Command(AS_NOBODY[0]!, {
      args: [
        ...AS_NOBODY.slice(1),
        "passt",
        "--foreground",
        "--one-off",
        "--quiet",
        "--socket",
        socket,
        "--address",
        "10.0.5.3",
        "--netmask",
        "24",
        "--gateway",
        "10.0.5.1",
        "--tcp-ports",
        `127.0.0.1/${port}:7`,
        "--udp-ports",
        `127.0.0.1/${port}:7`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const deadline = Date.now() + 10_000;
      while ((await run(["test", "-S", socket])).code !== 0) {
        assert.ok(Date.now() < deadline, "passt made its socket");
        await new Promise((r) => setTimeout(r, 20));
      }
      const dhyve = await startDhyve(s, port, { net: ["--net", `passt:${socket}`] });
      try {
        const tcp = [payload(3000, 1)];
        assert.deepEqual(await client(port, "tcp", tcp), [...tcp.map(hex), "eof"]);
        await client(port, "udp", [new TextEncoder().encode("dhyve-net-exit")]);
        assert.equal(await dhyve.exit(), 0, dhyve.output);
      } finally {
        dhyve.signal("SIGKILL");
        await dhyve.exit();
      }
      // dhyve closed its end: the user's passt (--one-off) ends too.
      const status = await passt.status;
      assert.equal(status.success, true);
    } finally {
      try {
        passt.kill("SIGKILL");
      } catch { /* already gone */ }
      await passt.status;
      await Deno.remove(socket).catch(() => {});
    }
  },
});

Deno.test({
  name: "--net passt without passt on PATH: one line naming apt install passt, exit 71",
  ignore: skip !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(): Promise<void> {
    const s = await stage();
    const empty = `${s.home}/empty-path`;
    await Deno.mkdir(empty, { recursive: true });
    const withoutPasst = (allowRun: string): ReturnType<typeof run> =>
      run([
        s.deno,
        "run",
        "--quiet",
        "--allow-ffi",
        "--allow-read",
        `--allow-write=${s.tmp}`,
        allowRun,
        s.main,
        "--tempdir",
        s.tmp,
        "--net",
        "passt",
        s.guest,
      ], { env: { PATH: empty, DENO_DIR: s.env.DENO_DIR! }, timeoutMs: 60_000 });
    const r = await withoutPasst("--allow-run");
    assert.equal(r.code, 71, r.stderr);
    assert.match(r.stderr, /apt install passt/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    await assertNoSocketLeft(s);
    // Scoped to passt, Deno cannot find it either: the permission line says how to get it.
    const scoped = await withoutPasst("--allow-run=passt");
    assert.equal(scoped.code, 77, scoped.stderr);
    assert.match(scoped.stderr, /--allow-run=passt/);
    assert.match(scoped.stderr, /apt install passt/);
  },
});
