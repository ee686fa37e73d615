/**
 * Multi-core benchmarks, whole process (`deno run main.ts -c N …`), medians
 * of 5 runs taken in rotation so that background load hits every variant
 * alike:
 *
 * - speed-up of a CPU-bound guest (`spin_work`: T LCG steps split across the
 *   vCPUs) with 2 vCPUs against 1;
 * - cost of one exit (`exit_loop`: C SerialWriteByte hypercalls per vCPU)
 *   with 1 vCPU, 2 vCPUs exiting at once, and 2 vCPUs of which only one exits.
 *
 * Each variant's baseline is the same guest with zero work at the same -c (VM
 * set-up, Worker start-up and the guest's bring-up barrier included), so
 * "time − baseline" is the guest's work alone.
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildGuest } from "../tests/_helpers/guests.ts";
import { loadAverage, median, timeProcess } from "./_util.ts";

const RUNS = 5;
/** LCG steps: about 2.5 s with one vCPU on the development machines (~2.9 µs a step). */
const SPIN_STEPS = 800_000;
/** Exits per vCPU: about 1.5 s with one vCPU on the development machines. */
const EXITS = 100_000;

const root = fileURLToPath(new URL("..", import.meta.url));
const mainTs = `${root}main.ts`;

/** One row of the speed-up table. */
export interface SpeedupResult {
  /** What was run. */
  name: string;
  /** Median whole-process time, ms. */
  medianMs: number;
  /** Median of the zero-work baseline, ms. */
  baselineMs: number;
  /** medianMs − baselineMs. */
  workMs: number;
  /** Speed-up against the 1-vCPU row (1 for that row). */
  speedup: number;
  /** The command. */
  command: string;
}

/** One row of the per-exit table. */
export interface ExitCostResult {
  /** What was run. */
  name: string;
  /** vCPUs making exits at the same time. */
  exiting: number;
  /** Median whole-process time, ms. */
  medianMs: number;
  /** Median of the zero-exit baseline, ms. */
  baselineMs: number;
  /** Wall time per exit as one exiting vCPU sees it, µs: (time − baseline) / C. */
  perExitUs: number;
  /** Exits per second over all vCPUs: exiting × C / (time − baseline). */
  exitsPerSecond: number;
  /** The command. */
  command: string;
}

/** Both tables. */
export interface SmpResults {
  /** The host's 1-minute load average before and after (other work skews the speed-up). */
  load: string;
  /** spin_work with 1 and 2 vCPUs. */
  speedup: SpeedupResult[];
  /** exit_loop with 1 and 2 vCPUs. */
  exits: ExitCostResult[];
}

/** A variant to time: the dhyve arguments with work and without. */
interface Variant {
  args: string[];
  baseline: string[];
}

/** Times every variant and its baseline RUNS times, in rotation; returns the medians. */
async function timeInRotation(
  variants: readonly Variant[],
): Promise<{ median: number; baseline: number }[]> {
  const deno = Deno.execPath();
  const prefix = ["run", "--quiet", "--allow-ffi", "--allow-read", mainTs];
  const runs = variants.map(() => ({ work: [] as number[], base: [] as number[] }));
  for (let i = 0; i < RUNS; i++) {
    for (const [v, variant] of variants.entries()) {
      for (
        const [args, into] of [[variant.args, runs[v]!.work], [
          variant.baseline,
          runs[v]!.base,
        ]] as const
      ) {
        const r = await timeProcess(deno, [...prefix, ...args]);
        if (r.code !== 0) {
          throw new Error(`dhyve ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
        }
        into.push(r.ms);
      }
    }
  }
  return runs.map((r) => ({ median: median(r.work), baseline: median(r.base) }));
}

/** Runs the multi-core benchmarks. */
export async function smpBenchmarks(): Promise<SmpResults> {
  const loadBefore = loadAverage();
  const spin = await buildGuest("spin_work", { iface: 1, pie: true });
  const loop = await buildGuest("exit_loop", { iface: 1, pie: true });

  const spinVariants = [1, 2].map((c) => ({
    args: ["-c", `${c}`, spin, `${SPIN_STEPS}`],
    baseline: ["-c", `${c}`, spin, "0"],
  }));
  const spinTimes = await timeInRotation(spinVariants);
  const oneWork = spinTimes[0]!.median - spinTimes[0]!.baseline;
  const speedup = spinTimes.map((t, i) => {
    const workMs = t.median - t.baseline;
    return {
      name: `spin_work ${SPIN_STEPS} steps, -c ${i + 1}`,
      medianMs: t.median,
      baselineMs: t.baseline,
      workMs,
      speedup: oneWork / workMs,
      command: `deno run --allow-ffi --allow-read main.ts -c ${i + 1} spin_work ${SPIN_STEPS}` +
        ` (baseline: … spin_work 0)`,
    };
  });

  const exitCases = [
    { name: "1 vCPU exiting", cpus: 1, who: "all", exiting: 1 },
    { name: "2 vCPUs exiting at once", cpus: 2, who: "all", exiting: 2 },
    { name: "2 vCPUs, only vCPU 0 exiting", cpus: 2, who: "boot", exiting: 1 },
  ];
  const exitTimes = await timeInRotation(exitCases.map((e) => ({
    args: ["-c", `${e.cpus}`, loop, `${EXITS}`, e.who],
    baseline: ["-c", `${e.cpus}`, loop, "0", e.who],
  })));
  const exits = exitCases.map((e, i) => {
    const t = exitTimes[i]!;
    const workMs = t.median - t.baseline;
    return {
      name: `exit_loop ${EXITS} per vCPU, ${e.name}`,
      exiting: e.exiting,
      medianMs: t.median,
      baselineMs: t.baseline,
      perExitUs: (workMs * 1000) / EXITS,
      exitsPerSecond: (e.exiting * EXITS) / (workMs / 1000),
      command:
        `deno run --allow-ffi --allow-read main.ts -c ${e.cpus} exit_loop ${EXITS} ${e.who}` +
        ` (baseline: … exit_loop 0 ${e.who})`,
    };
  });
  return { load: `${loadBefore} → ${loadAverage()}`, speedup, exits };
}
