/**
 * The library's run entry, kept at its historical path: `runVm` and its
 * result and error types. The run itself is `machine/build.ts`.
 * @module
 */

export { runVm, type VmResult } from "./machine/build.ts";
export { VmError } from "./machine/errors.ts";
