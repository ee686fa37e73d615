/**
 * Host threads: this thread's kernel id, a signal to one thread (to kick a
 * vCPU out of KVM_RUN), and CPU affinity.
 * @module
 */

import { errno, libc } from "./libc.ts";

const SYS_GETTID = 186;
const SYS_TGKILL = 234;

/** The kernel thread id of the calling thread (for kicking it out of KVM_RUN). */
export function currentThreadId(): number {
  return libc().syscall_args(SYS_GETTID);
}

/** Sends `signal` to one thread of this process; returns 0 or the errno. */
export function signalThread(tid: number, signal: number): number {
  return libc().syscall_args(SYS_TGKILL, Deno.pid, tid, signal) < 0 ? errno() : 0;
}

/** Pins the calling thread to host core `core`; returns 0 or the errno. */
export function pinCurrentThread(core: number): number {
  const mask = new Uint8Array(128); // cpu_set_t: 1024 bits
  mask[core >> 3] = 1 << (core & 7);
  return libc().sched_setaffinity(0, mask.length, mask) < 0 ? errno() : 0;
}

/** The calling thread's CPU mask (to restore after pinning), or null. */
export function currentAffinity(): Uint8Array<ArrayBuffer> | null {
  const mask = new Uint8Array(128);
  return libc().sched_getaffinity(0, mask.length, mask) < 0 ? null : mask;
}

/** Restores a mask from {@linkcode currentAffinity}; returns 0 or the errno. */
export function restoreAffinity(mask: Uint8Array<ArrayBuffer>): number {
  return libc().sched_setaffinity(0, mask.length, mask) < 0 ? errno() : 0;
}
