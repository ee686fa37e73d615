/**
 * Messages and shared words between the main thread and vCPU Workers. Pure
 * data shapes: structured-clone friendly, no classes.
 * @module
 */

import type { XsaveComponent } from "../emulate/xsave.ts";
import type { GuestCommandLine, StopKind } from "../hypercall/context.ts";
import type { NetShared } from "../net/net_device.ts";

/** Indices into the shared control Int32Array. */
export const CONTROL = {
  /** Becomes 1 when the VM must stop (claimed with compareExchange). */
  STOP: 0,
  /**
   * Becomes 1 when the run ends by a signal or the time limit: vCPU Workers
   * then drop output that a stalled reader has not taken, instead of waiting.
   */
  DROP_OUTPUT: 1,
  /** First of one slot per vCPU: its kernel thread id, once running. */
  TIDS: 2,
} as const;

/** Size in Int32 words of the control array for `cpuCount` vCPUs. */
export function controlWords(cpuCount: number): number {
  return CONTROL.TIDS + 2 * cpuCount;
}

/**
 * The control word where vCPU `cpu` counts the ticks in a row it found
 * itself halted for good (0 once it runs again); after the thread ids.
 */
export function haltedWord(cpuCount: number, cpu: number): number {
  return CONTROL.TIDS + cpuCount + cpu;
}

/** What a Worker needs to run its vCPU. */
export interface WorkerInit {
  /** vCPU id. */
  cpu: number;
  /** How many vCPUs the VM has. */
  cpuCount: number;
  /** The vCPU fd (process-wide). */
  vcpuFd: number;
  /** Host address of its `kvm_run` mapping. */
  runAddress: number;
  /** Size of the `kvm_run` mapping. */
  runSize: number;
  /** Host address of guest RAM. */
  memAddress: number;
  /** Size of guest RAM. */
  memSize: number;
  /** Guest-physical address of guest RAM. */
  guestAddress: number;
  /** KVM copies the registers into `kvm_run` on each exit. */
  syncRegs: boolean;
  /** XSAVE component layout, as entries. */
  xsaveLayout: [number, XsaveComponent][];
  /** argv and env for Cmdsize/Cmdval. */
  cmdline: GuestCommandLine;
  /** The shared control words. */
  control: SharedArrayBuffer;
  /** The file channel slots. */
  files: SharedArrayBuffer;
  /** "stdio": write guest output straight to stdout/stderr; "post": send it to the main thread. */
  output: "stdio" | "post";
  /** Host core to pin to, or null to float. */
  affinity: number | null;
  /** The virtio-net device (`--net`), or null. */
  net: NetShared | null;
  /** The VM's IOAPIC state when its interrupt controller is split, else null. */
  ioapic: SharedArrayBuffer | null;
}

/** A stop, as a Worker reports it. */
export interface StopRecord {
  /** Exit or error. */
  kind: StopKind;
  /** Guest exit code or dhyve exit code. */
  code: number;
  /** One-line message for errors. */
  message: string;
  /** Register dump. */
  detail: string;
}

export type { StatsRecord } from "./stats.ts";
import type { StatsRecord } from "./stats.ts";

/** Messages from a Worker to the main thread. */
export type WorkerMessage =
  | { type: "stop"; cpu: number; stop: StopRecord }
  | { type: "done"; cpu: number; stats: StatsRecord }
  | { type: "output"; stream: 1 | 2; bytes: Uint8Array }
  | { type: "warning"; message: string }
  /** The vCPU found itself halted for good on DEAD_TICKS ticks in a row. */
  | { type: "halted"; cpu: number; rip: number; line: { text: string; at: number } }
  | { type: "fatal"; cpu: number; message: string };
