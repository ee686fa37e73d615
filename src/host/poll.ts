/**
 * Zero-timeout readiness checks of one fd (poll(2)), for stdin and output
 * sinks that must never block the run loop.
 * @module
 */

import { libc } from "./libc.ts";

const POLLIN = 1;
const POLLOUT = 4;
const pollBuffer = new Uint8Array(8); // struct pollfd { int fd; short events; short revents; }
const pollView = new DataView(pollBuffer.buffer);

/** poll() of one fd with a zero timeout: 1 ready (or error/hang-up), 0 not, -1 failed. */
function pollNow(fd: number, events: number): number {
  pollView.setInt32(0, fd, true);
  pollView.setInt16(4, events, true);
  pollView.setInt16(6, 0, true);
  return libc().poll(pollBuffer, 1, 0); // an i32 result: no BigInt per call (output flushes)
}

/**
 * Whether a zero-timeout poll() result says the fd is ready: 1 is (an
 * error condition or hang-up included, which the read or write then
 * reports); 0 is not, and neither is -1. poll() of one valid buffer fails
 * only with EINTR (the run loop's tick, SIGALRM, landed during the call) or
 * ENOMEM: "ready" there sent the caller into a blocking read or write that
 * a stalled pipe never let return (a run that neither --timeout nor SIGTERM
 * could end, ~1 in 100 runs of the stalled-reader tests). Not ready: the
 * caller asks again a moment later.
 */
export function pollReady(result: number): boolean {
  return result > 0;
}

/**
 * True when a read of `fd` would not block: data, end of input, or an error
 * condition is waiting (poll with a zero timeout).
 */
export function fdReadable(fd: number): boolean {
  return pollReady(pollNow(fd, POLLIN));
}

/**
 * True when a write of up to PIPE_BUF (4 KiB) bytes to `fd` would not block
 * (poll with a zero timeout). An error condition counts as writable: the
 * write then reports it.
 */
export function fdWritable(fd: number): boolean {
  return pollReady(pollNow(fd, POLLOUT));
}
