/**
 * Runs a built test guest in this process ({@linkcode runGuest}) or the dhyve
 * command line as a subprocess ({@linkcode dhyveCli}), capturing what each
 * writes. Needs what the callers' KVM tests need (`--allow-ffi`, `--allow-read`,
 * `--allow-write`, `--allow-run`).
 * @module
 */

import { CaptureSink } from "../../src/io/guest_output.ts";
import type { VmParams } from "../../src/params.ts";
import { runVm, type VmResult } from "../../src/vm.ts";
import { buildGuest, type GuestBuild } from "./guests.ts";

const REPO_ROOT = decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(/\/$/, "");
/** The dhyve command line's entry point. */
export const MAIN_TS = `${REPO_ROOT}/main.ts`;

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

/** The outcome of one `deno run main.ts …`. */
export interface CliRun {
  /** Exit status. */
  code: number;
  /** Everything on stdout. */
  stdout: string;
  /** Everything on stderr. */
  stderr: string;
}

/**
 * Runs `deno run --quiet <permissions> main.ts <args>` from the repository root
 * with stdin closed and colours off.
 */
export async function dhyveCli(
  args: readonly string[],
  permissions: readonly string[] = ["--allow-ffi", "--allow-read"],
): Promise<CliRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...permissions, MAIN_TS, ...args],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The non-empty lines of `text`. */
export function nonEmptyLines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}
