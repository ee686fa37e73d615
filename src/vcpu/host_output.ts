/**
 * The process's stdout and stderr as guest output sinks that say when a write
 * would block. A reader that stops reading then stalls the guest's output
 * hypercalls (they are retried) instead of blocking the thread, so signals,
 * `--timeout` and the stop of another vCPU are still seen.
 * @module
 */

import type { OutputSink } from "../io/guest_output.ts";
import { fdWritable } from "../kvm.ts";

/** The host's fd 1 or 2 as an {@linkcode OutputSink} with a writability check. */
export function hostOutputSink(fd: 1 | 2): OutputSink {
  const stream = fd === 1 ? Deno.stdout : Deno.stderr;
  return {
    writeSync: (p: Uint8Array): number => stream.writeSync(p),
    readyToWrite: (): boolean => fdWritable(fd),
  };
}
