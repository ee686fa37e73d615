/**
 * `--net` end to end with the `net_echo` guest (1 vCPU), each backend in a
 * private network namespace of its own:
 *
 * - `tap`: a TAP (host 10.0.5.2, guest 10.0.5.3), the guest without checksum
 *   offload (it computes every checksum itself, as before the TAP had a
 *   virtio-net header);
 * - `tap+csum`: the same TAP, the guest negotiating CSUM/GUEST_CSUM (the host
 *   kernel completes and skips checksums);
 * - `passt`: `--net passt` with the echo port published on loopback
 *   (`--publish 7007:7`, TCP and UDP); the clients talk to 127.0.0.1:7007.
 *
 * Measured by python3 clients inside the namespace: UDP round-trip time (64
 * bytes, one in flight), UDP echo throughput with 1 and 8 datagrams in
 * flight for 64- and 1472-byte payloads (2000 and 300 datagrams; packets/s
 * counts echoed datagrams; MiB/s is payload one way), TCP echo throughput
 * (256 KiB through one connection, 16 KiB in flight), and for the TAP `ping`. KVM exits per
 * packet come from `--stats=json` over the whole run. Needs root (netns),
 * /dev/net/tun, passt, ping, python3; a backend that cannot run is left out
 * with the reason on stderr.
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildGuest } from "../tests/_helpers/guests.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const mainTs = `${root}main.ts`;
const dec = new TextDecoder();
/** Bytes echoed through the TCP connection. */
const TCP_BYTES = 256 * 1024;

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

/** The network backends measured. */
export type NetBackend = "tap" | "tap+csum" | "passt";

/** What the network benchmark measured for one backend. */
export interface NetBenchResult {
  /** Which backend. */
  backend: NetBackend;
  /** ping -c 20 -i 0.2 (TAP only; passt forwards no ICMP to the guest): min / avg / max ms. */
  pingMs: { min: number; avg: number; max: number } | null;
  /** Mean UDP round trip, 64 bytes, one in flight, µs. */
  udpRttUs: number;
  /** UDP echo loads. */
  udp: UdpResult[];
  /** TCP echo, MiB/s one way. */
  tcpMibPerSecond: number;
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
ip, port, size, window, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
payload = bytes((i * 7) & 0xff for i in range(size))
sent = got = lost = 0
t0 = time.perf_counter()
while got + lost < count:
    while sent < count and sent - got - lost < window:
        s.sendto(payload, (ip, port)); sent += 1
    try:
        data, _ = s.recvfrom(65535)
        if data != payload: raise SystemExit("reply differs")
        got += 1
    except socket.timeout:
        lost += sent - got - lost
t = time.perf_counter() - t0
print(json.dumps({"got": got, "lost": lost, "seconds": t}))
`;

/** Echoes `total` bytes through one TCP connection, `chunk` at a time; prints one JSON line. */
const TCP_LOAD = `
import socket, sys, time, json
ip, port, total, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = socket.create_connection((ip, port), timeout=30)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
data = bytes((i * 13) & 0xff for i in range(chunk))
done = 0
t0 = time.perf_counter()
while done < total:
    c.sendall(data)
    got = 0
    while got < chunk:
        part = c.recv(65536)
        if not part: raise SystemExit("connection closed early")
        got += len(part)
    done += chunk
t = time.perf_counter() - t0
c.close()
print(json.dumps({"bytes": done, "seconds": t}))
`;

/** Sends the guest's exit datagram and waits for its "bye". */
const EXIT_CLIENT = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"dhyve-net-exit", (sys.argv[1], int(sys.argv[2])))
s.recvfrom(100)
`;

/** Checks that something answers UDP echo at ip:port (the guest is up); exits non-zero if not. */
const UDP_PROBE = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(b"probe", (sys.argv[1], int(sys.argv[2])))
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

/** The namespace set-up each backend needs. */
function setUp(backend: NetBackend, inNs: (...cmd: string[]) => string[]): string[][] {
  if (backend === "passt") {
    // passt takes its host side from an interface with a default route.
    return [
      inNs("ip", "link", "set", "lo", "up"),
      inNs("ip", "link", "add", "b0", "type", "veth", "peer", "name", "b1"),
      inNs("ip", "addr", "add", "198.51.100.2/24", "dev", "b0"),
      inNs("ip", "link", "set", "b1", "up"),
      inNs("ip", "link", "set", "b0", "up"),
      inNs("ip", "route", "add", "default", "via", "198.51.100.1"),
    ];
  }
  return [
    inNs("ip", "tuntap", "add", "dev", "btap0", "mode", "tap"),
    inNs("ip", "addr", "add", "10.0.5.2/24", "dev", "btap0"),
    inNs("ip", "link", "set", "btap0", "up"),
  ];
}

/** Measures one backend; null (with the reason on stderr) where it cannot run. */
async function measure(backend: NetBackend): Promise<NetBenchResult | null> {
  const ns = `dhyve-bench-${Deno.pid}`;
  const passt = backend === "passt";
  try {
    if (!passt && (await run(["test", "-c", "/dev/net/tun"])).code !== 0) {
      throw new Error("no /dev/net/tun");
    }
    if (passt && (await run(["sh", "-c", "command -v passt"])).code !== 0) {
      throw new Error("passt is not installed (apt install passt)");
    }
    await must(["ip", "netns", "add", ns]);
  } catch (error) {
    Deno.stderr.writeSync(new TextEncoder().encode(`SKIP bench/net.ts ${backend}: ${error}\n`));
    return null;
  }
  const inNs = (...cmd: string[]): string[] => ["ip", "netns", "exec", ns, ...cmd];
  const [ip, port] = passt ? ["127.0.0.1", "7007"] : ["10.0.5.3", "7"];
  let child: Deno.ChildProcess | null = null;
  try {
    for (const step of setUp(backend, inNs)) await must(step);
    const guest = await buildGuest("net_echo", { iface: 2, pie: true, versionNote: false });
    const args = [
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      ...(passt ? ["--allow-write=/tmp", "--allow-run=passt"] : ["--allow-write=/dev/net/tun"]),
      mainTs,
      "--stats=json",
      "-v",
      "--timeout",
      "600s",
      ...(passt
        ? ["--net", "passt", "--publish", `${port}:7`, "--publish", `${port}:7/udp`]
        : ["-n", "tap:btap0"]),
      guest,
      ...(backend === "tap+csum" ? ["--", "csum"] : []),
    ];
    child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    // The guest is up once it echoes.
    const deadline = Date.now() + 60_000;
    while ((await run(inNs("python3", "-c", UDP_PROBE, ip, port))).code !== 0) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        const out = await output;
        child = null;
        throw new Error(
          `the guest did not come up; dhyve said: ${dec.decode(out.stdout)}${
            dec.decode(out.stderr)
          }`,
        );
      }
    }
    let pingMs: NetBenchResult["pingMs"] = null;
    if (!passt) {
      const ping = await must(inNs("ping", "-q", "-c", "20", "-i", "0.2", ip));
      const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping);
      if (rtt === null) throw new Error(`cannot read ping's summary: ${ping}`);
      pingMs = { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]) };
    }
    const udp: UdpResult[] = [];
    for (const payload of [64, 1472]) {
      for (const window of [1, 8]) {
        // The guest copies every byte under emulation here: big datagrams are slow, fewer do.
        const count = payload > 1000 ? 300 : 2000;
        const text = await must(
          inNs("python3", "-c", UDP_LOAD, ip, port, `${payload}`, `${window}`, `${count}`),
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
    const tcpText = await must(inNs("python3", "-c", TCP_LOAD, ip, port, `${TCP_BYTES}`, "16384"));
    const tcp = JSON.parse(tcpText) as { bytes: number; seconds: number };
    await must(inNs("python3", "-c", EXIT_CLIENT, ip, port));
    const done = await output;
    child = null;
    const stdout = dec.decode(done.stdout);
    const stats = JSON.parse(stdout.slice(stdout.lastIndexOf("\n{") + 1)) as { totalExits: number };
    const counts = /net: done rx=(\d+) tx=(\d+)/.exec(stdout);
    const busy = /data path busy ([\d.]+) µs per frame/.exec(dec.decode(done.stderr));
    const packets = counts === null ? NaN : Number(counts[1]) + Number(counts[2]);
    const small = udp.find((u) => u.payload === 64 && u.window === 1)!;
    return {
      backend,
      pingMs,
      udpRttUs: 1e6 / small.packetsPerSecond,
      udp,
      tcpMibPerSecond: tcp.bytes / tcp.seconds / (1024 * 1024),
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

/** The backends measured, in order. */
export const NET_BACKENDS: readonly NetBackend[] = ["tap", "tap+csum", "passt"];

/** Runs the network benchmark for `backends` (default: all) that can run here. */
export async function netBenchmarks(
  backends: readonly NetBackend[] = NET_BACKENDS,
): Promise<NetBenchResult[]> {
  const results: NetBenchResult[] = [];
  for (const backend of backends) {
    try {
      const r = await measure(backend);
      if (r !== null) results.push(r);
    } catch (error) {
      Deno.stderr.writeSync(new TextEncoder().encode(`FAILED bench/net.ts ${backend}: ${error}\n`));
    }
  }
  return results;
}

if (import.meta.main) {
  // `deno run -A bench/net.ts [tap] [tap+csum] [passt]`: only those backends.
  const picked = NET_BACKENDS.filter((b) => Deno.args.includes(b));
  const r = await netBenchmarks(picked.length > 0 ? picked : NET_BACKENDS);
  // deno-lint-ignore no-console
  console.log(JSON.stringify(r, null, 2));
}
