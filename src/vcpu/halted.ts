/**
 * Whether a vCPU can ever run again by itself: the fact a supervisor needs to
 * tell a dead guest (every vCPU halted with interrupts off, as Hermit 0.6.9
 * after its own #GP) from one that waits for an interrupt. Read outside
 * KVM_RUN, on the vCPU's own thread.
 * @module
 */

import { MP_STATE_HALTED } from "../abi/kvm.ts";
import { Regs, type VcpuFd } from "../kvm.ts";

/** A vCPU found halted for good (see {@linkcode haltedForGood}). */
export interface HaltedVcpu {
  /** The vCPU id. */
  readonly cpu: number;
  /** Where it halted. */
  readonly rip: number;
}

/**
 * Ticks in a row a vCPU must be found halted for good before it counts as
 * dead (a vCPU woken by another's NMI or INIT in between is seen running).
 */
export const DEAD_TICKS = 3;

/** RFLAGS.IF: maskable interrupts enabled. */
const RFLAGS_IF = 0x200;

/**
 * `vcpu` (outside KVM_RUN) if it can never run again by itself: halted
 * (KVM_MP_STATE_HALTED), interrupts disabled, and no exception, interrupt,
 * NMI or SMI pending. Only an NMI or INIT from another vCPU could still wake
 * it, so a guest is dead when this holds for every vCPU. Null otherwise.
 */
export function haltedForGood(vcpu: VcpuFd, regs: Regs = new Regs()): HaltedVcpu | null {
  if (vcpu.mpState() !== MP_STATE_HALTED) return null;
  vcpu.getRegs(regs);
  if ((regs.get("rflags") & RFLAGS_IF) !== 0) return null;
  if (vcpu.eventsPending()) return null;
  return { cpu: vcpu.id, rip: regs.get("rip") };
}
