/**
 * `--net` through a TAP in a private network namespace (host 10.0.5.2, guest
 * 10.0.5.3, the `net_echo` guest, 1 vCPU): ping round-trip time, and UDP echo
 * throughput measured by a python3 client inside the namespace with 1 and 8
 * datagrams in flight, for 64-byte and 1472-byte payloads (packets/s counts
 * echoed datagrams; MiB/s is payload one way). KVM exits per packet come from
 * `--stats=json` over the whole run. Needs root (netns), /dev/net/tun, ping,
 * python3; returns null where they are missing.
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildGuest } from "../tests/_helpers/guests.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const mainTs = `${root}main.ts`;
const GUEST_IP = "10.0.5.3";
const dec = new TextDecoder();

/** One measured UDP load. */
export interface UdpResult {
  /** Payload bytes per datagram. */
  payload: number;
  /** Datagrams in flight at once. */
  window: number;
  /** Echoed datagrams per second. */
  packetsPerSecond: number;
  /** Payload MiB/s one way. */
  mibPerSecond: number;
  /** Datagrams that got no reply within the client's timeout. */
  lost: number;
}

/** What the network benchmark measured. */
export interface NetBenchResult {
  /** ping -c 20 -i 0.2: min / avg / max round trip in ms. */
  pingMs: { min: number; avg: number; max: number };
  /** UDP echo loads. */
  udp: UdpResult[];
  /** KVM exits over the run divided by packets the device moved (both ways). */
  exitsPerPacket: number;
  /** Host time the net Worker was busy per frame (dhyve's `-v` summary line), µs. */
  hostUsPerFrame: number;
  /** The command that ran the guest. */
  command: string;
}

/** Sends `count` datagrams of `size` bytes keeping `window` in flight; prints one JSON line. */
const UDP_LOAD = `
import socket, sys, time, json
ip, size, window, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
payload = bytes((i * 7) & 0xff for i in range(size))
sent = got = lost = 0
t0 = time.perf_counter()
while got + lost < count:
    while sent < count and sent - got - lost < window:
        s.sendto(payload, (ip, 7)); sent += 1
    try:
        data, _ = s.recvfrom(65535)
        if data != payload: raise SystemExit("reply differs")
        got += 1
    except socket.timeout:
        lost += sent - got - lost
t = time.perf_counter() - t0
print(json.dumps({"got": got, "lost": lost, "seconds": t}))
`;

/** Sends the guest's exit datagram and waits for its "bye". */
const EXIT_CLIENT = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"dhyve-net-exit", (sys.argv[1], 7))
s.recvfrom(100)
`;

async function run(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function must(cmd: string[]): Promise<string> {
  const r = await run(cmd);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Runs the network benchmark; null (with the reason on stderr) where it cannot run. */
export async function netBenchmarks(): Promise<NetBenchResult | null> {
  const ns = `dhyve-bench-${Deno.pid}`;
  try {
    if ((await run(["test", "-c", "/dev/net/tun"])).code !== 0) throw new Error("no /dev/net/tun");
    await must(["ip", "netns", "add", ns]);
  } catch (error) {
    Deno.stderr.writeSync(new TextEncoder().encode(`SKIP bench/net.ts: ${error}\n`));
    return null;
  }
  const inNs = (...cmd: string[]): string[] => ["ip", "netns", "exec", ns, ...cmd];
  let child: Deno.ChildProcess | null = null;
  try {
    await must(inNs("ip", "tuntap", "add", "dev", "btap0", "mode", "tap"));
    await must(inNs("ip", "addr", "add", "10.0.5.2/24", "dev", "btap0"));
    await must(inNs("ip", "link", "set", "btap0", "up"));
    const guest = await buildGuest("net_echo", { iface: 2, pie: true, versionNote: false });
    const args = [
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write=/dev/net/tun",
      "--allow-env",
      mainTs,
      "--stats=json",
      "-v",
      "--timeout",
      "300s",
      "-n",
      "tap:btap0",
      guest,
    ];
    child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    // The guest is up once it answers a ping.
    const deadline = Date.now() + 60_000;
    while ((await run(inNs("ping", "-c", "1", "-W", "1", GUEST_IP))).code !== 0) {
      if (Date.now() > deadline) throw new Error("the guest did not come up");
    }
    const ping = await must(inNs("ping", "-q", "-c", "20", "-i", "0.2", GUEST_IP));
    const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping);
    if (rtt === null) throw new Error(`cannot read ping's summary: ${ping}`);
    const udp: UdpResult[] = [];
    for (const payload of [64, 1472]) {
      for (const window of [1, 8]) {
        const count = 2000;
        const text = await must(
          inNs("python3", "-c", UDP_LOAD, GUEST_IP, `${payload}`, `${window}`, `${count}`),
        );
        const r = JSON.parse(text) as { got: number; lost: number; seconds: number };
        udp.push({
          payload,
          window,
          packetsPerSecond: r.got / r.seconds,
          mibPerSecond: (r.got * payload) / r.seconds / (1024 * 1024),
          lost: r.lost,
        });
      }
    }
    await must(inNs("python3", "-c", EXIT_CLIENT, GUEST_IP));
    const done = await output;
    child = null;
    const stdout = dec.decode(done.stdout);
    const stats = JSON.parse(stdout.slice(stdout.lastIndexOf("\n{") + 1)) as { totalExits: number };
    const counts = /net: done rx=(\d+) tx=(\d+)/.exec(stdout);
    const busy = /data path busy ([\d.]+) µs per frame/.exec(dec.decode(done.stderr));
    const packets = counts === null ? NaN : Number(counts[1]) + Number(counts[2]);
    return {
      pingMs: { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]) },
      udp,
      exitsPerPacket: stats.totalExits / packets,
      hostUsPerFrame: busy === null ? NaN : Number(busy[1]),
      command: `ip netns exec NS deno ${args.join(" ")}`.replace(root, "").replace(
        guest,
        "net_echo",
      ),
    };
  } finally {
    if (child !== null) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    }
    await run(["ip", "netns", "del", ns]);
  }
}

if (import.meta.main) {
  const r = await netBenchmarks();
  // deno-lint-ignore no-console
  console.log(JSON.stringify(r, null, 2));
}
