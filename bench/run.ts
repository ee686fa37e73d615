/**
 * `deno task bench`: runs every benchmark and prints a table per group.
 * Results are recorded by hand in docs/performance.md with the machine and
 * date this prints.
 * @module
 */

import { bootBenchmarks } from "./boot.ts";
import { fileReadBenchmarks } from "./file_read.ts";
import { smpBenchmarks } from "./smp.ts";
import { netBenchmarks } from "./net.ts";
import { netPathBenchmark } from "./net_path.ts";
import { floorTables } from "./kvm_floor.ts";
import { machineDescription, printTable } from "./_util.ts";

const enc = new TextEncoder();
Deno.stdout.writeSync(
  enc.encode(`dhyve benchmarks: ${new Date().toISOString()}\nmachine: ${machineDescription()}\n\n`),
);

const boot = await bootBenchmarks();
printTable([
  ["start-up (whole process, median of 10)", "ms", "command"],
  ...boot.map((r) => [r.name, r.medianMs.toFixed(1), r.command]),
]);

Deno.stdout.writeSync(enc.encode("\n"));
const reads = await fileReadBenchmarks();
printTable([
  ["guest file reads (whole process, median of 5)", "ms", "MiB/s", "command"],
  ...reads.map((r) => [
    r.name,
    r.medianMs.toFixed(1),
    r.mibPerSecond === null ? "" : r.mibPerSecond.toFixed(0),
    r.command,
  ]),
]);

Deno.stdout.writeSync(enc.encode("\n"));
const smp = await smpBenchmarks();
printTable([
  [
    `multi-core: CPU-bound guest (median of 5; load ${smp.load})`,
    "ms",
    "baseline",
    "work ms",
    "speed-up",
    "command",
  ],
  ...smp.speedup.map((r) => [
    r.name,
    r.medianMs.toFixed(0),
    r.baselineMs.toFixed(0),
    r.workMs.toFixed(0),
    `${r.speedup.toFixed(2)}x`,
    r.command,
  ]),
]);
Deno.stdout.writeSync(enc.encode("\n"));
printTable([
  ["multi-core: exits (median of 5)", "ms", "baseline", "µs/exit/vCPU", "exits/s", "command"],
  ...smp.exits.map((r) => [
    r.name,
    r.medianMs.toFixed(0),
    r.baselineMs.toFixed(0),
    r.perExitUs.toFixed(1),
    r.exitsPerSecond.toFixed(0),
    r.command,
  ]),
]);

const path = netPathBenchmark();
Deno.stdout.writeSync(
  enc.encode(
    `\nnetwork data path alone (bench/net_path.ts, eventfds for the TAP): ${
      path.usPerRound.toFixed(2)
    } µs and ${path.bytesPerRound.toFixed(1)} B allocated per round (one frame each way)\n`,
  ),
);
const nets = await netBenchmarks();
if (nets.length > 0) {
  Deno.stdout.writeSync(enc.encode("\n"));
  printTable([
    [
      "network: net_echo guest, 1 vCPU, own netns (tap: no offload; tap+csum: checksum offload)",
      ...nets.map((n) => n.backend),
    ],
    ["ping avg ms (20 pings)", ...nets.map((n) => n.pingMs?.avg.toFixed(3) ?? "-")],
    ["UDP round trip µs (64 B, 1 in flight)", ...nets.map((n) => n.udpRttUs.toFixed(0))],
    ...nets[0]!.udp.map((u, i) => [
      `UDP echo packets/s (${u.payload} B, ${u.window} in flight)`,
      ...nets.map((n) =>
        `${n.udp[i]!.packetsPerSecond.toFixed(0)}${
          n.udp[i]!.lost ? ` (${n.udp[i]!.lost} lost)` : ""
        }`
      ),
    ]),
    [
      "UDP echo MiB/s (1472 B, 8 in flight)",
      ...nets.map((n) => n.udp.at(-1)!.mibPerSecond.toFixed(3)),
    ],
    [
      "TCP echo MiB/s (256 KiB, 16 KiB in flight)",
      ...nets.map((n) => n.tcpMibPerSecond.toFixed(3)),
    ],
    ["KVM exits per frame", ...nets.map((n) => n.exitsPerPacket.toFixed(3))],
    ["net Worker busy per frame µs", ...nets.map((n) => n.hostUsPerFrame.toFixed(1))],
  ]);
  for (const n of nets) Deno.stdout.writeSync(enc.encode(`${n.backend}: ${n.command}\n`));
}

// dhyve against the C floor (bench/kvm_floor.ts, bench/c_floor/floor.c): ratios dhyve / C.
for (const table of await floorTables()) {
  Deno.stdout.writeSync(enc.encode("\n"));
  printTable(table);
}
