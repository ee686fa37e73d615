/**
 * Runs a built test guest in this process ({@linkcode runGuest}), capturing
 * what it writes (the command line as a subprocess: `cli.ts`). Needs what the
 * callers' KVM tests need (`--allow-ffi`, `--allow-read`, `--allow-write`,
 * `--allow-run`).
 * @module
 */

import { CaptureSink } from "../../src/io/guest_output.ts";
import type { VmParams } from "../../src/params.ts";
import { runVm, type VmResult } from "../../src/vm.ts";
import { buildGuest, type GuestBuild } from "./guests.ts";

/** A run's result plus what the guest wrote to each stream. */
export interface GuestRun {
  /** The built guest's path. */
  kernel: string;
  /** What {@linkcode runVm} resolved to. */
  result: VmResult;
  /** Guest stdout (serial and fd 1). */
  stdout: string;
  /** Guest fd 2. */
  stderr: string;
  /** Milliseconds {@linkcode runVm} took. */
  ms: number;
}

/**
 * Builds `name` for `variant` and runs it with captured output, without
 * Landlock (it cannot be undone in this process and would fence later tests).
 */
export async function runGuest(
  name: string,
  variant: GuestBuild,
  params: VmParams = {},
): Promise<GuestRun> {
  const kernel = await buildGuest(name, variant);
  const out = new CaptureSink();
  const err = new CaptureSink();
  const t0 = performance.now();
  const result = await runVm(kernel, {
    fileIsolation: "none",
    ...params,
    stdout: out,
    stderr: err,
  });
  return { kernel, result, stdout: out.text(), stderr: err.text(), ms: performance.now() - t0 };
}
