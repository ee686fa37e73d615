/**
 * The stops the host imposes on a run: `--timeout`, SIGINT and SIGTERM. Pure.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { VmStop } from "../hypercall/context.ts";

/** The stop for a run that exceeded its time limit. */
export function timeoutStop(timeoutMs: number): VmStop {
  return new VmStop(
    "error",
    EXIT_CODE.TIMEOUT,
    `The guest ran longer than the time limit of ${formatDuration(timeoutMs)} and was stopped`,
  );
}

/** The signals that stop a run cleanly, each with the exit code a shell expects. */
export const STOP_SIGNALS = [
  { signal: "SIGINT", code: EXIT_CODE.SIGINT },
  { signal: "SIGTERM", code: EXIT_CODE.SIGTERM },
] as const;

/** A signal that stops a run. */
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** The stop for a run ended by `s` (exit 130 or 143). */
export function signalStop(s: StopSignal): VmStop {
  return new VmStop("error", s.code, `Stopped by ${s.signal}`);
}

function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
