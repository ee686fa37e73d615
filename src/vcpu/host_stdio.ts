/**
 * The process's stdin, stdout and stderr as the guest's serial input and
 * output, each with a check whether the next call would block. A guest
 * waiting for input, or writing to a reader that stopped reading, then
 * stalls its hypercall (it is retried) instead of blocking the thread, so
 * signals, `--timeout` and the stop of another vCPU are still seen.
 * @module
 */

import type { InputSource } from "../hypercall/serial_input.ts";
import type { OutputSink } from "../io/guest_output.ts";
import { fdReadable, fdWritable } from "../kvm.ts";

/** The host's fd 1 or 2 as an {@linkcode OutputSink} with a writability check. */
export function hostOutputSink(fd: 1 | 2): OutputSink {
  const stream = fd === 1 ? Deno.stdout : Deno.stderr;
  return {
    writeSync: (p: Uint8Array): number => stream.writeSync(p),
    readyToWrite: (): boolean => fdWritable(fd),
  };
}

/** The host's stdin as serial input, with a readiness check. */
export function hostStdin(): InputSource {
  return {
    readSync: (p: Uint8Array): number | null => Deno.stdin.readSync(p),
    ready: (): boolean => fdReadable(0),
  };
}
