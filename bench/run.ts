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
import { startupBenchmark } from "./startup.ts";
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
const net = await netBenchmarks();
if (net !== null) {
  Deno.stdout.writeSync(enc.encode("\n"));
  printTable([
    ["network: ping through a TAP in a netns (20 pings)", "min ms", "avg ms", "max ms"],
    [
      "ping 10.0.5.3 (net_echo guest, 1 vCPU)",
      ...[net.pingMs.min, net.pingMs.avg, net.pingMs.max].map((v) => v.toFixed(3)),
    ],
  ]);
  Deno.stdout.writeSync(enc.encode("\n"));
  printTable([
    ["network: UDP echo (2000 datagrams)", "packets/s", "MiB/s", "lost"],
    ...net.udp.map((u) => [
      `${u.payload}-byte payload, ${u.window} in flight`,
      u.packetsPerSecond.toFixed(0),
      u.mibPerSecond.toFixed(3),
      `${u.lost}`,
    ]),
  ]);
  Deno.stdout.writeSync(
    enc.encode(
      `KVM exits per frame: ${net.exitsPerPacket.toFixed(3)}; net Worker busy per frame: ${
        net.hostUsPerFrame.toFixed(1)
      } µs\ncommand: ${net.command}\n`,
    ),
  );
}

// dhyve against the C floor (bench/kvm_floor.ts, bench/c_floor/floor.c): ratios dhyve / C.
for (const table of await floorTables()) {
  Deno.stdout.writeSync(enc.encode("\n"));
  printTable(table);
}

// Start-up phase by phase next to the C floor, and the RSS split (bench/startup.ts).
Deno.stdout.writeSync(enc.encode("\n"));
await startupBenchmark();
