/**
 * `deno task bench`: runs every benchmark and prints a table per group.
 * Results are recorded by hand in docs/performance.md with the machine and
 * date this prints.
 * @module
 */

import { bootBenchmarks } from "./boot.ts";
import { fileReadBenchmarks } from "./file_read.ts";
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
