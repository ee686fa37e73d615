/**
 * `deno task bench`: runs every benchmark and prints a table per group.
 * Results are recorded by hand in docs/performance.md with the machine and
 * date this prints.
 * @module
 */

import { bootBenchmarks } from "./boot.ts";
import { fileReadBenchmarks } from "./file_read.ts";
import { smpBenchmarks } from "./smp.ts";
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

// dhyve against the C floor (bench/kvm_floor.ts, bench/c_floor/floor.c): ratios dhyve / C.
for (const table of await floorTables()) {
  Deno.stdout.writeSync(enc.encode("\n"));
  printTable(table);
}
