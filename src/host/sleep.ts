/**
 * Sleeping, and giving the event loop a turn, without timers. In Deno 2.9
 * the first `setTimeout` of a process loads Node's timer machinery (timers,
 * async hooks, errors, util.inspect: 8–10 ms measured), and a run would pay
 * that on its first tick. Here a `nonblocking` FFI `poll(NULL, 0, ms)` sleeps
 * on Deno's blocking thread pool instead (first use ~0.3 ms) and resolves a
 * Promise; meanwhile the event loop runs signal listeners and other ops.
 *
 * A sleep cannot be cancelled, and a pending one keeps the event loop (and
 * so a library caller's process) alive until it ends: callers sleep in short
 * slices ({@linkcode MAX_SLEEP_MS} at most) and loop for longer waits.
 * @module
 */

import { libc, libcLoaded } from "./libc.ts";

/** The longest single sleep: how long a pending one may outlive its caller's interest. */
export const MAX_SLEEP_MS = 50;

/** Resolves after `ms` milliseconds (at most {@linkcode MAX_SLEEP_MS}; 0: one pool round trip). */
export function sleep(ms: number): Promise<void> {
  const slice = Math.max(0, Math.min(MAX_SLEEP_MS, Math.ceil(ms)));
  return libc().poll_async(null, 0, slice).then(() => {});
}

/** Gives the event loop a turn (signals, I/O) and resolves soon after. */
export function yieldTurn(): Promise<void> {
  return sleep(0);
}

/**
 * {@linkcode yieldTurn} when this thread has loaded libc already (a run has);
 * resolves at once otherwise, rather than load libc for it (`--version`).
 */
export function yieldTurnIfLoaded(): Promise<void> {
  return libcLoaded() ? yieldTurn() : Promise.resolve();
}
