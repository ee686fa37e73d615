/**
 * A periodic SIGALRM aimed at one thread, so that a blocking KVM_RUN on it
 * returns EINTR regularly.
 * @module
 */

import { libc } from "./libc.ts";

const CLOCK_MONOTONIC = 1;
const SIGEV_THREAD_ID = 4;
/** The tick's signal; listen for it with `Deno.addSignalListener("SIGALRM", …)`. */
const SIGALRM = 14;
let alarmHandlerKept = false;

/**
 * Keeps a no-op SIGALRM listener for the life of the process. Deno restores
 * SIGALRM's default action (terminate) when its last listener is removed, and
 * a tick still queued when a ticker stops would then kill the process.
 */
export function keepAlarmHandler(): void {
  if (alarmHandlerKept) return;
  alarmHandlerKept = true;
  Deno.addSignalListener("SIGALRM", () => {});
}

/**
 * A periodic SIGALRM aimed at one thread (`timer_create` with
 * SIGEV_THREAD_ID). A vCPU running on the main thread uses it so that
 * KVM_RUN returns EINTR regularly even while the guest sits halted: a
 * process-directed signal (SIGINT from the terminal, say) may land on
 * another of Deno's threads and never interrupt KVM_RUN by itself.
 */
export class ThreadTicker {
  readonly #id: bigint;
  #live = true;

  private constructor(id: bigint) {
    this.#id = id;
  }

  /** Starts sending SIGALRM to thread `tid` every `intervalMs`; null if the kernel refuses. */
  static start(tid: number, intervalMs: number): ThreadTicker | null {
    keepAlarmHandler();
    const sev = new Uint8Array(64); // struct sigevent
    const view = new DataView(sev.buffer);
    view.setInt32(8, SIGALRM, true); // sigev_signo
    view.setInt32(12, SIGEV_THREAD_ID, true); // sigev_notify
    view.setInt32(16, tid, true); // _sigev_un._tid
    const id = new Uint8Array(8);
    if (libc().timer_create(CLOCK_MONOTONIC, sev, id) < 0) return null;
    const timerId = new DataView(id.buffer).getBigUint64(0, true);
    const spec = new Uint8Array(32); // struct itimerspec { interval, value }
    const s = new DataView(spec.buffer);
    const sec = BigInt(Math.floor(intervalMs / 1000));
    const nsec = BigInt(Math.round((intervalMs % 1000) * 1e6));
    s.setBigInt64(0, sec, true);
    s.setBigInt64(8, nsec, true);
    s.setBigInt64(16, sec, true);
    s.setBigInt64(24, nsec, true);
    if (libc().timer_settime(timerId, 0, spec, 0) < 0) {
      libc().timer_delete(timerId);
      return null;
    }
    return new ThreadTicker(timerId);
  }

  /** Stops and deletes the timer. */
  stop(): void {
    if (!this.#live) return;
    this.#live = false;
    libc().timer_delete(this.#id);
  }
}
