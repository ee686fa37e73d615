/**
 * Whole-process time of a run: bare Deno start-up, dhyve with the noop test
 * guest, and dhyve with uhyve's real `hello_c` (when HERMIT_IMAGES is set).
 * Medians of 10 runs.
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildGuest } from "../tests/_helpers/guests.ts";
import { median, medianProcessMs, timeProcess } from "./_util.ts";

const RUNS = 10;
const root = fileURLToPath(new URL("..", import.meta.url));
const mainTs = `${root}main.ts`;

/** One benchmark result row. */
export interface BootResult {
  /** What was run. */
  name: string;
  /** Median wall time in ms. */
  medianMs: number;
  /** The command. */
  command: string;
}

/** Runs the start-up benchmarks and returns their rows. */
export async function bootBenchmarks(): Promise<BootResult[]> {
  const deno = Deno.execPath();
  const results: BootResult[] = [];
  const empty = `${root}bench/_empty.ts`;
  const bare = await medianProcessMs(deno, ["run", empty], RUNS);
  results.push({
    name: "bare deno run (empty script)",
    medianMs: bare.median,
    command: `deno run ${empty}`,
  });

  for (const pie of [true, false]) {
    const noop = await buildGuest("noop", { iface: 1, pie });
    const args = ["run", "--allow-ffi", "--allow-read", mainTs, noop];
    const r = await medianProcessMs(deno, args, RUNS);
    results.push({
      name: `dhyve noop guest (v1, ${pie ? "PIE" : "fixed"}, 64 MiB)`,
      medianMs: r.median,
      command: `deno run --allow-ffi --allow-read main.ts noop`,
    });
  }

  const images = Deno.env.get("HERMIT_IMAGES");
  if (images) {
    // hello_c sometimes faults on its own unterminated env array (README,
    // known issues) and then halts: such runs hit --timeout and are counted
    // apart instead of being timed.
    const hello = `${images}/hello_c`;
    const args = [
      "run",
      "--allow-ffi",
      "--allow-read",
      mainTs,
      "--timeout",
      "15s",
      "-e",
      "A=b",
      hello,
      "a1",
      "bb",
    ];
    const times: number[] = [];
    let faulted = 0;
    for (let i = 0; i < RUNS * 3 && times.length < RUNS; i++) {
      const r = await timeProcess(deno, args);
      if (r.code === 0) times.push(r.ms);
      else faulted++;
    }
    results.push({
      name: `dhyve uhyve hello_c -e A=b a1 bb (${faulted} faulted run(s) left out)`,
      medianMs: times.length > 0 ? median(times) : NaN,
      command: "deno run --allow-ffi --allow-read main.ts --timeout 15s -e A=b hello_c a1 bb",
    });
  }
  return results;
}
