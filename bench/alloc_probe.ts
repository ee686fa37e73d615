/**
 * Hot-path allocation probe: runs `runVm` in this process on the
 * `serial_loop` guest with few and with many exits, and reads V8's
 * cumulative allocation counter (`total_allocated_bytes` of `node:v8`'s heap
 * statistics) around each run. Set-up allocates the same in both runs, so
 * (bytes(many) − bytes(few)) / (many − few) is what one exit allocates; GC
 * cannot hide it, as the counter counts allocations, not the live heap.
 *
 * The counter also sees allocations that do not scale with the exits (JIT
 * compilation and deoptimisation, the 50 ms event-loop yields, timers), which
 * add 0–5 MB to a run at random. They only ever add, so the estimate uses the
 * smallest of REPEATS runs for each count; the medians are reported too.
 *
 * Usage (bench/kvm_floor.ts runs it; the guest's output goes to stdout):
 *   deno run --allow-ffi --allow-read bench/alloc_probe.ts V1_ELF V2_ELF > /dev/null
 * Prints one JSON line on stderr: `{"results":[{iface, few, many, bytesFew,
 * bytesMany, bytesPerExit, bytesPerExitMedian}]}`.
 * @module
 */

import v8 from "node:v8";
import { runVm } from "../mod.ts";
import { COLD_RUNS } from "../src/kvm/vcpu.ts";
import { median } from "./_util.ts";

/**
 * Exit counts of the two runs. Both pass COLD_RUNS, where KVM_RUN moves to
 * the fast ioctl (bound once, and the run loop re-optimised after it), so
 * that one-time step is in both and cancels out.
 */
const FEW = COLD_RUNS + 1_000;
const MANY = 100_000;
/** Runs per count; the median is reported. */
const REPEATS = 5;

/** What the probe measured for one guest. */
export interface AllocResult {
  /** Hypercall interface of the guest. */
  iface: number;
  /** Serial exits in the small run. */
  few: number;
  /** Serial exits in the large run. */
  many: number;
  /** Smallest bytes allocated by a whole small run. */
  bytesFew: number;
  /** Smallest bytes allocated by a whole large run. */
  bytesMany: number;
  /** (bytesMany − bytesFew) / (many − few), from the smallest runs. */
  bytesPerExit: number;
  /** The same from the medians. */
  bytesPerExitMedian: number;
}

function allocated(): number {
  return v8.getHeapStatistics().total_allocated_bytes;
}

/** Bytes V8 allocated during one run of `elf` making `exits` serial exits. */
async function bytesForRun(elf: string, exits: number): Promise<number> {
  const before = allocated();
  // No Landlock: it would fence this process for the runs that follow.
  const result = await runVm(elf, { args: [String(exits)], fileIsolation: "none" });
  const after = allocated();
  if (result.exitCode !== 0) {
    throw new Error(`serial_loop ${exits} exited with ${result.exitCode}: ${result.error}`);
  }
  return after - before;
}

/** Measures one guest: a warm-up run, then FEW and MANY alternately. */
async function probe(elf: string, iface: number): Promise<AllocResult> {
  await bytesForRun(elf, 20_000); // warm-up: the JIT compiles the loop here
  const few: number[] = [];
  const many: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    few.push(await bytesForRun(elf, FEW));
    many.push(await bytesForRun(elf, MANY));
  }
  const bytesFew = Math.min(...few);
  const bytesMany = Math.min(...many);
  return {
    iface,
    few: FEW,
    many: MANY,
    bytesFew,
    bytesMany,
    bytesPerExit: (bytesMany - bytesFew) / (MANY - FEW),
    bytesPerExitMedian: (median(many) - median(few)) / (MANY - FEW),
  };
}

if (import.meta.main) {
  const [v1, v2] = Deno.args;
  if (v1 === undefined || v2 === undefined) {
    throw new TypeError("Usage: alloc_probe.ts V1_SERIAL_LOOP_ELF V2_SERIAL_LOOP_ELF");
  }
  const results = [await probe(v1, 1), await probe(v2, 2)];
  Deno.stderr.writeSync(new TextEncoder().encode(JSON.stringify({ results }) + "\n"));
}
