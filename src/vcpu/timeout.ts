/**
 * The stop for a run that exceeded `--timeout`. Pure.
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

function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
